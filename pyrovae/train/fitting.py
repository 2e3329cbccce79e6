r"""Training: the SVI loop behind :func:`fit`, with schedules, checkpoints and a history.

``fit`` drives the same ``vae.model`` and ``vae.guide`` a user would hand to ``SVI``. With a
``pyro.optim`` optimiser it *is* ``SVI.step``. Without one (the default) it takes the fast
path: one ``torch.optim.Adam`` (fused where the device supports it) over the module's
parameters, Pyro's per-site validation off (the data are checked once, at entry), no
``pyro.module`` registration per step, and no host synchronisation per step (losses
accumulate on the device). With the default ``Trace_ELBO`` the loss is
:func:`reparam_trace_elbo`: the guide is traced, the model replayed against it, and
:math:`-(\log p(x, z) - \log q(z|x))` summed, which is ``Trace_ELBO``'s estimator for a
reparameterised guide (same draws, same value, same gradient) without its bookkeeping. Any
other ELBO runs through its own ``differentiable_loss``. All paths minimise an unbiased
estimator of the negative ELBO,

.. math::

    -\mathcal{L} = -\sum_{n} \mathbb{E}_{q(z_n|x_n)}\left[\log p(x_n|z_n)\right]
        + \beta \sum_n \mathrm{KL}\left(q(z_n|x_n) \,\|\, p(z_n)\right),

scaled by ``N / batch`` so that a minibatch estimates the full-data objective.

References:

1. Kingma, D. P. and Welling, M. (2014). Auto-Encoding Variational Bayes. ICLR.
2. Bowman, S. R. et al. (2016). Generating Sentences from a Continuous Space. CoNLL
   (KL warm-up).
3. Sønderby, C. K. et al. (2016). Ladder Variational Autoencoders. NeurIPS (warm-up).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pyro
import torch
from pyro.infer import ELBO, SVI, Trace_ELBO
from pyro.optim import PyroOptim
from tqdm.auto import tqdm

from .._util.device import resolve_device
from ..data import InMemoryLoader
from ..data import binarize as binarize_images
from ..evaluate.bounds import elbo_terms
from ..infer.losses import make_loss
from ..infer.reparam_trace_elbo import reparam_trace_elbo
from ..models import VAE
from . import checkpoint as ckpt
from . import distributed as ddp
from .history import History
from .schedules import beta_at


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; the message names the epoch and the step."""


def _as_tensor(data: Any, name: str) -> torch.Tensor:
    if isinstance(data, torch.Tensor):
        return data
    images = getattr(data, "images", None)
    if isinstance(images, torch.Tensor):
        return images
    raise ValueError(f"{name} must be a tensor (N, *x_shape) or have an .images tensor, got {type(data).__name__}")


def check_training_data(vae: VAE, x: torch.Tensor, binarize: str | None, name: str) -> None:
    """Check a whole data set once, at the boundary: shape, finiteness, support.

    :raises ValueError: naming the problem and what was expected.
    """
    if x.dim() < 2 or len(x) == 0:
        raise ValueError(f"{name} must be a non-empty batch (N, *x_shape), got shape {tuple(x.shape)}")
    vae.check_data(x[:1], support=False)
    if binarize is not None:
        lo, hi = torch.aminmax(x.detach())  # one pass over the data; NaN propagates and fails below
        if bool(lo >= 0) and bool(hi <= 1):
            return
    bad = ~torch.isfinite(x)
    if bad.any():
        raise ValueError(f"{name} contains NaN or inf at {int(bad.sum())} positions; expected finite values")
    if binarize is None:
        vae.likelihood.check(x)
    elif (x < 0).any() or (x > 1).any():
        raise ValueError(
            f"{name} has values in [{float(x.min()):.4g}, {float(x.max()):.4g}] but binarize={binarize!r} "
            "needs probabilities in [0, 1]"
        )


def _seed_epoch(seed: int | None, epoch: int, rank: int = 0) -> None:
    # every epoch starts from a known RNG state, so a resumed run repeats the original exactly;
    # distributed ranks draw different noise (their parameters stay equal: the gradients are)
    if seed is not None:
        pyro.set_rng_seed(seed * 100003 + epoch + 7919 * rank)


def _adam(params: list[torch.nn.Parameter], lr: float) -> torch.optim.Optimizer:
    # the fused kernel updates every tensor in one pass; where the device or dtype has none,
    # plain Adam (same maths, same state-dict layout, so checkpoints load either way)
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr)


def fit(
    vae: VAE,
    train_images: Any,
    test_images: Any = None,
    *,
    epochs: int,
    batch_size: int,
    binarize: str | None = "dynamic",
    loss: ELBO | str | None = None,
    num_particles: int | None = None,
    optim: PyroOptim | Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer] | None = None,
    lr: float = 1e-3,
    lr_schedule: Callable[[int], float] | None = None,
    device: str | torch.device = "auto",
    seed: int | None = 0,
    beta: float | None = None,
    warmup_epochs: float = 0.0,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    callbacks: Sequence[Callable[[int, VAE, History], None]] = (),
    eval_batch_size: int = 1000,
    test_seed: int = 0,
    progress: bool = True,
    check_every: int = 100,
    validate: bool = False,
    distributed: bool = False,
) -> History:
    """Train ``vae`` by stochastic variational inference.

    :param vae: the model; moved to ``device``.
    :param train_images: ``(N, *x_shape)`` tensor, or an object with ``.images`` (e.g.
        :class:`pyrovae.data.ImageSet`).
    :param test_images: held-out data for the per-epoch test ELBO, or ``None``.
    :param epochs: total number of epochs (a resumed run continues up to this number).
    :param batch_size: examples per step.
    :param binarize: ``"dynamic"`` (fresh Bernoulli draw each batch), ``"static"`` (one draw,
        seed ``seed``), or ``None`` (use values as they are). Test data are binarised once with
        ``test_seed``.
    :param loss: any Pyro ELBO (default ``Trace_ELBO()``), or one by name: ``"trace"``,
        ``"meanfield"``, ``"jit"``, or ``"iwae"`` for the per-data-point importance-weighted
        bound (:func:`pyrovae.losses.make_loss`).
    :param num_particles: with a named ``loss``, samples of z per data point (default 1, and
        5 for ``"iwae"``). An ELBO object carries its own.
    :param optim: a ``pyro.optim`` optimiser (runs ``SVI.step``), or a factory
        ``params -> torch.optim.Optimizer``; ``None`` is ``torch.optim.Adam(lr=lr)``.
    :param lr: learning rate of the default optimiser.
    :param lr_schedule: ``epoch -> learning rate`` (epochs count from 1), set on every
        parameter group of a torch optimiser at the start of each epoch, so a resumed run
        follows the same schedule (e.g. :func:`exponential_lr`). Not for ``pyro.optim``
        optimisers, which schedule themselves (``pyro.optim.ExponentialLR`` etc.).
    :param device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ...
    :param seed: seeds Pyro/torch at the start of every epoch (``None``: leave the RNG alone).
    :param beta: the KL weight to train with (default: ``vae.beta``).
    :param warmup_epochs: epochs over which β rises linearly from 0 (KL warm-up).
    :param checkpoint: file to write after every epoch (atomically).
    :param resume: continue from ``checkpoint`` if it exists.
    :param callbacks: called as ``cb(epoch, vae, history)`` after every epoch.
    :param eval_batch_size: batch size of the held-out evaluation.
    :param test_seed: seed of the test set's fixed binarisation.
    :param progress: show a tqdm progress bar.
    :param check_every: steps between checks for a non-finite loss (each check syncs once).
    :param validate: keep Pyro's per-site validation on during training (slower; also runs
        ``Trace_ELBO`` itself, with its model/guide checks, instead of the lean estimator).
    :param distributed: train data-parallel over the initialised ``torch.distributed``
        process group (see :mod:`pyrovae.distributed`): each rank takes an equal shard of
        ``train_images``, the plate still scales by the full ``N`` (so each rank's loss
        estimates the full-data ELBO), and gradients are averaged across ranks before each
        step. Only rank 0 writes checkpoints and shows progress.
    :returns: the :class:`History`.
    :raises ValueError: for bad data or settings.
    :raises TrainingDivergedError: when the loss becomes NaN/inf; earlier checkpoints are kept.
    """
    if epochs < 0 or batch_size < 1:
        raise ValueError(f"epochs must be >= 0 and batch_size >= 1, got epochs={epochs}, batch_size={batch_size}")
    if binarize not in ("dynamic", "static", None):
        raise ValueError(f"binarize must be 'dynamic', 'static' or None, got {binarize!r}")
    if resume and checkpoint is None:
        raise ValueError("resume=True needs checkpoint=PATH")
    if lr_schedule is not None and isinstance(optim, PyroOptim):
        raise ValueError("lr_schedule needs a torch optimiser; a pyro.optim optimiser schedules itself "
                         "(e.g. pyro.optim.ExponentialLR)")
    dev = resolve_device(device)
    x_train = _as_tensor(train_images, "train_images")
    check_training_data(vae, x_train, binarize, "train_images")
    x_test = None
    if test_images is not None:
        x_test = _as_tensor(test_images, "test_images")
        check_training_data(vae, x_test, binarize, "test_images")
        x_test = x_test.to(dev)
        if binarize is not None:
            x_test = binarize_images(x_test, "static", seed=test_seed)  # fixed, comparable across epochs
    vae.to(dev)
    vae.sync_param_store()
    vae.register_params()  # once: the fast path skips pyro.module per step
    if isinstance(loss, str):
        loss = make_loss(loss, num_particles)
    elif num_particles is not None:
        raise ValueError("num_particles goes with a named loss (e.g. loss='iwae'); an ELBO object carries its own")
    loss = loss if loss is not None else Trace_ELBO()
    target_beta = vae.beta if beta is None else float(beta)
    num_data = len(x_train)
    rank, world = 0, 1
    if distributed:
        rank, world = ddp.rank_and_world()
        ddp.broadcast_parameters(vae)  # every rank starts from rank 0's initialisation
        x_train = ddp.shard(x_train, rank, world)  # (N // world, *x_shape); num_data stays N
        progress = progress and rank == 0
        checkpoint_writer = rank == 0
    else:
        checkpoint_writer = True
    x_train = x_train.to(dev)
    if binarize == "static":
        x_train = binarize_images(x_train, "static", seed=seed)
    # the loader takes no seed of its own: fit re-seeds the global RNG each epoch instead,
    # which makes a resumed run identical to an uninterrupted one
    loader = InMemoryLoader(x_train, batch_size, shuffle=True, binarize="dynamic" if binarize == "dynamic" else None)
    steps_per_epoch = len(loader)
    warmup_steps = int(round(warmup_epochs * steps_per_epoch))

    use_svi = isinstance(optim, PyroOptim)
    if use_svi:
        if distributed:
            raise ValueError("distributed=True needs a torch optimiser (optim=None or a factory), not pyro.optim")
        optimizer = optim
        svi = SVI(vae.model, vae.guide, optim, loss)
    else:
        params = [p for p in vae.parameters() if p.requires_grad]
        optimizer = optim(params) if optim is not None else _adam(params, lr)
    has_diff_loss = hasattr(loss, "differentiable_loss")
    # Trace_ELBO with one particle: the same estimator, computed leanly (reparam_trace_elbo)
    lean = not use_svi and not validate and type(loss) is Trace_ELBO and loss.num_particles == 1
    model, guide = vae.model, vae.guide  # bound once: a JIT ELBO keys its cache on their ids

    history, start_epoch = History(), 0
    fit_config = {"epochs": epochs, "batch_size": batch_size, "binarize": binarize, "lr": lr, "seed": seed,
                  "beta": target_beta, "warmup_epochs": warmup_epochs, "loss": type(loss).__name__}
    if resume and Path(checkpoint).exists():
        payload = ckpt.read_checkpoint(checkpoint)
        ckpt.load_into(vae, payload, path=checkpoint)
        vae.to(dev)
        # pyro.optim keeps the state until its per-parameter optimisers are created lazily
        ckpt.load_optimizer_state(optimizer, payload["optimizer"])
        history = History.from_dict(payload["history"])
        start_epoch = int(payload["epoch"])

    def step(x: torch.Tensor) -> torch.Tensor | float:
        nonlocal lean
        if use_svi:
            return svi.step(x, num_data=num_data)
        optimizer.zero_grad(set_to_none=True)
        value = reparam_trace_elbo(model, guide, x, num_data=num_data) if lean else None
        if value is None and lean:
            lean = False  # a non-reparameterised guide site: Trace_ELBO adds its score term
        if value is not None or has_diff_loss:
            if value is None:
                value = loss.differentiable_loss(model, guide, x, num_data=num_data)
            value.backward()
            value = value.detach()
        else:
            value = loss.loss_and_grads(model, guide, x, num_data=num_data)  # grads land on the params
        if world > 1:
            ddp.average_gradients(params)
        optimizer.step()
        return value

    global_step = start_epoch * steps_per_epoch
    for epoch in range(start_epoch + 1, epochs + 1):
        _seed_epoch(seed, epoch, rank)
        if lr_schedule is not None:
            for group in optimizer.param_groups:
                group["lr"] = float(lr_schedule(epoch))
        vae.train()
        losses = torch.zeros(steps_per_epoch, device=dev)  # (steps,) per-step loss, kept on the device
        bar = tqdm(loader, total=steps_per_epoch, desc=f"epoch {epoch}/{epochs}", disable=not progress, leave=False)
        t0 = time.perf_counter()
        with pyro.validation_enabled(validate), vae.param_registration(use_svi):
            for i, x in enumerate(bar):
                vae.beta = beta_at(global_step, warmup_steps, target_beta)
                losses[i] = step(x)
                global_step += 1
                if (i + 1) % check_every == 0 or i + 1 == steps_per_epoch:
                    _check_finite(losses[: i + 1], epoch, checkpoint)
                    if progress:
                        bar.set_postfix(elbo=f"{-float(losses[max(0, i + 1 - check_every): i + 1].mean()) / num_data:.2f}")
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        seconds = time.perf_counter() - t0
        vae.beta = target_beta
        epoch_loss = losses.mean()
        if world > 1:
            epoch_loss = ddp.mean_across_ranks(epoch_loss)
        history.epoch.append(epoch)
        history.train_elbo.append(-float(epoch_loss) / num_data)
        history.beta.append(vae.beta)
        history.seconds.append(seconds)
        if x_test is not None:
            vae.eval()
            recon, kl = elbo_terms(vae, x_test, batch_size=eval_batch_size)
            history.test_recon.append(float(recon.mean()))
            history.test_kl.append(float(kl.mean()))
            history.test_elbo.append(float((recon - kl).mean()))
        else:
            history.test_recon.append(None)
            history.test_kl.append(None)
            history.test_elbo.append(None)
        if progress:
            test = f", test ELBO {history.test_elbo[-1]:.2f}" if x_test is not None else ""
            tqdm.write(f"epoch {epoch}: train ELBO {history.train_elbo[-1]:.2f}{test} ({seconds:.1f}s)")
        if checkpoint is not None and checkpoint_writer:
            ckpt.save_checkpoint(checkpoint, vae, optimizer=optimizer, epoch=epoch, history=history.to_dict(),
                                 fit_config=fit_config)
        for cb in callbacks:
            cb(epoch, vae, history)
    vae.eval()
    return history


def _check_finite(losses: torch.Tensor, epoch: int, checkpoint: Any) -> None:
    finite = torch.isfinite(losses)
    if bool(finite.all()):
        return
    first = int((~finite).nonzero()[0, 0]) + 1
    kept = f"; the last good checkpoint {checkpoint} is untouched" if checkpoint is not None else ""
    raise TrainingDivergedError(
        f"loss became {float(losses[first - 1])} at epoch {epoch}, step {first}{kept}. "
        "Try a smaller learning rate, KL warm-up, or check the data."
    )
