r"""Schedules over training: KL warm-up for β, a geometric learning-rate decay, and stepping
the torch and Pyro learning-rate schedulers.

References:

1. Bowman, S. R. et al. (2016). Generating Sentences from a Continuous Space. CoNLL
   (KL warm-up).
2. Sønderby, C. K. et al. (2016). Ladder Variational Autoencoders. NeurIPS (warm-up).
3. Burda, Y., Grosse, R. and Salakhutdinov, R. (2016). Importance Weighted Autoencoders. ICLR.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from pyro.optim.lr_scheduler import PyroLRScheduler
from torch.optim.lr_scheduler import ReduceLROnPlateau

__all__ = ["beta_at", "exponential_lr", "make_lr_scheduler", "step_epoch_schedulers"]


def beta_at(step: int, total_warmup_steps: int, beta: float) -> float:
    """Linear KL warm-up: β rises from 0 to ``beta`` over ``total_warmup_steps`` steps."""
    if total_warmup_steps <= 0:
        return beta
    return beta * min(1.0, step / total_warmup_steps)


def exponential_lr(lr: float, final_lr: float, epochs: int) -> Callable[[int], float]:
    r"""A learning rate that decays geometrically from ``lr`` (epoch 1) to ``final_lr`` (epoch ``epochs``).

    :math:`\eta_e = \eta_0 (\eta_E / \eta_0)^{(e-1)/(E-1)}`, held at ``final_lr`` after
    epoch ``E``. Burda et al. (2016) decay by :math:`10^{-1/7}` per stage for the same reason:
    the last nats of test log-likelihood come at small step sizes. Pass it as
    ``fit(..., lr_schedule=exponential_lr(1e-3, 1e-4, epochs))``.

    Example:

    >>> from pyrovae.train import exponential_lr
    >>> schedule = exponential_lr(1e-3, 1e-4, epochs=3)
    >>> [round(schedule(epoch), 6) for epoch in (1, 2, 3, 4)]
    [0.001, 0.000316, 0.0001, 0.0001]
    """
    if not (0 < lr < math.inf and 0 < final_lr < math.inf) or epochs < 1:  # NaN fails both comparisons
        raise ValueError(f"need finite lr > 0, final_lr > 0 and epochs >= 1, got {lr}, {final_lr}, {epochs}")
    ratio = final_lr / lr

    def schedule(epoch: int) -> float:
        return lr * ratio ** (min(max(epoch - 1, 0), epochs - 1) / max(epochs - 1, 1))

    return schedule


def make_lr_scheduler(factory: Callable[[Any], Any] | None, optimizer: Any, interval: str) -> Any:
    """``factory(optimizer)``, a torch LR scheduler, checked for the interval it steps at.

    :raises ValueError: for a ``ReduceLROnPlateau`` stepped per step (it needs an epoch's metric).
    """
    if factory is None:
        return None
    scheduler = factory(optimizer)
    if not hasattr(scheduler, "step") or not hasattr(scheduler, "state_dict"):
        raise ValueError(f"lr_scheduler must return a torch LR scheduler (optimizer -> scheduler), "
                         f"got {type(scheduler).__name__}")
    if interval == "step" and isinstance(scheduler, ReduceLROnPlateau):
        raise ValueError("ReduceLROnPlateau steps on an epoch's held-out ELBO: use scheduler_interval='epoch'")
    return scheduler


def step_epoch_schedulers(optimizer: Any, scheduler: Any, metric: float) -> None:
    """Step what schedules per epoch: ``scheduler`` (a torch LR scheduler, or ``None``) and, for a
    ``pyro.optim`` scheduler such as ``pyro.optim.ExponentialLR``, its per-parameter schedulers.

    :param metric: what a ``ReduceLROnPlateau`` minimises (the negative held-out ELBO, else the
        negative training ELBO).
    """
    steppers = [scheduler] if scheduler is not None else []
    if isinstance(optimizer, PyroLRScheduler):
        steppers += list(optimizer.optim_objs.values())
    for s in steppers:
        if isinstance(s, ReduceLROnPlateau):
            s.step(metric)
        else:
            s.step()
