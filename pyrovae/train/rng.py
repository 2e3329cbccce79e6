"""Random-number streams of a run, so that a resumed run repeats an uninterrupted one bit for bit.

Every epoch starts from an RNG seeded by ``(seed, epoch, rank)`` (:func:`seed_epoch`). That
alone is not enough: some ELBOs do lazy work on their *first* call that draws random numbers.
Pyro guesses ``max_plate_nesting`` by running the model and guide once, and its JIT ELBOs run
the loss twice more to compile it. Done inside the first step, those draws land in the RNG
stream of whichever epoch runs first (epoch 1 in an uninterrupted run, the first epoch after the
checkpoint in a resumed one), and the two runs part. :func:`isolate_first_calls` removes them
from the epochs' streams: the guess draws from a forked RNG whenever it happens, and a JIT
loss is compiled before any epoch is seeded. For the same reason ``ReparamTrace_ELBO`` chooses
its route (traced or direct) there, so that every step of both runs takes the same one.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any

import pyro
import torch
from pyro.infer import JitTrace_ELBO, JitTraceEnum_ELBO, JitTraceGraph_ELBO, JitTraceMeanField_ELBO

__all__ = ["forked_rng", "isolate_first_calls", "neutral_plate_guess", "reads_param_store", "seed_epoch"]

#: Pyro's compiled ELBOs: they read the parameters from the param store (as inputs of the traced graph).
JIT_ELBOS = (JitTrace_ELBO, JitTraceEnum_ELBO, JitTraceGraph_ELBO, JitTraceMeanField_ELBO)


def seed_epoch(seed: int | None, epoch: int, rank: int = 0) -> None:
    """Seed Pyro/torch/NumPy/Python for ``epoch`` (nothing when ``seed`` is ``None``)."""
    # distributed ranks draw different noise (their parameters stay equal: the gradients are)
    if seed is not None:
        pyro.set_rng_seed(seed * 100003 + epoch + 7919 * rank)


def reads_param_store(loss: Any) -> bool:
    """Whether ``loss`` takes the parameters from Pyro's param store, so that the model and guide
    must register their modules (``pyro.module``) on every call, as for ``SVI``."""
    return isinstance(loss, JIT_ELBOS)


@contextlib.contextmanager
def forked_rng(module: torch.nn.Module, device: torch.device) -> Iterator[None]:
    """Run a block with the torch RNG (CPU and ``device``) and ``module``'s buffers restored after it."""
    buffers = [(b, b.detach().clone()) for b in module.buffers()]  # e.g. batch-norm running statistics
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            with torch.no_grad():
                for b, saved in buffers:
                    b.copy_(saved)


def _rng_neutral(guess: Callable, module: torch.nn.Module, device: torch.device) -> Callable:
    @functools.wraps(guess)
    def guess_in_fork(*args: Any, **kwargs: Any) -> Any:
        with forked_rng(module, device):
            return guess(*args, **kwargs)

    guess_in_fork._rng_neutral = True
    return guess_in_fork


def neutral_plate_guess(loss: Any, module: torch.nn.Module, device: torch.device) -> None:
    """Make ``loss``'s lazy guess of ``max_plate_nesting`` (a run of the model and guide, on the
    first call of an ELBO built without it) draw from a forked RNG, outside the epochs' streams."""
    guess = getattr(loss, "_guess_max_plate_nesting", None)
    if guess is not None and not getattr(guess, "_rng_neutral", False):
        loss._guess_max_plate_nesting = _rng_neutral(guess, module, device)  # Pyro calls it lazily


def isolate_first_calls(step: Any, module: torch.nn.Module, device: torch.device, first_batch: Callable[[], tuple],
                        context: Callable[[], contextlib.AbstractContextManager]) -> None:
    """Keep the ELBO's first-call work out of the epochs' RNG streams (see the module docstring).

    :param step: a :class:`~pyrovae.train.TorchStep` or :class:`~pyrovae.train.SVIStep`.
    :param module: the trained module.
    :param device: where it trains.
    :param first_batch: returns the model arguments of one batch (called only if needed, inside the fork).
    :param context: the context the steps run in (validation, parameter registration).
    """
    loss = step.loss
    neutral_plate_guess(loss, module, device)
    check = getattr(loss, "check_direct_route", None)  # ReparamTrace_ELBO: choose the route before epoch 1
    if check is not None:
        with forked_rng(module, device), context(), torch.no_grad():
            check(step.model, step.guide, *first_batch(), num_data=step.num_data)
    if not reads_param_store(loss):
        return
    # compile now: the JIT's extra runs of the loss would otherwise draw in the first epoch run
    with forked_rng(module, device), context():
        loss.differentiable_loss(step.model, step.guide, *first_batch(), num_data=step.num_data)
