r"""Training: the SVI loop behind :func:`fit`, with schedules, checkpoints and a history.

``fit`` drives the same ``vae.model`` and ``vae.guide`` a user would hand to ``SVI``. With a
``pyro.optim`` optimiser it *is* ``SVI.step``. Without one (the default) it takes the fast
path: one ``torch.optim.Adam`` (fused where the device supports it) over the module's
parameters, Pyro's per-site validation off (the data are checked once, at entry), no
``pyro.module`` registration per step, and no host synchronisation per step (losses
accumulate on the device). The default loss is
:class:`~pyrovae.infer.ReparamTrace_ELBO`: the guide is traced, the model replayed against it,
and :math:`-(\log p(x, z) - \log q(z|x))` summed, which is ``Trace_ELBO``'s estimator for a
reparameterised guide (same draws, same value, same gradient) without its bookkeeping; for
the VAE's own model and guide it skips the traces altogether once one traced step, before
the first epoch, has shown the sites to be exactly ``"z"`` and ``"x"``
(:mod:`pyrovae.infer.direct_route`). Any other ELBO runs through its own ``differentiable_loss``. The loop itself is
:class:`~pyrovae.train.Trainer`; ``fit`` only builds its :class:`~pyrovae.train.TrainConfig`.
All paths minimise an unbiased estimator of the negative ELBO,

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

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from pyro.infer import ELBO
from pyro.optim import PyroOptim

from ..infer.losses import resolve_loss
from ..models import VAE
from .callbacks import Callback
from .config import TrainConfig
from .history import History
from .trainer import Trainer

__all__ = ["fit"]


def fit(vae: VAE, train_images: Any, test_images: Any = None, *, epochs: int, batch_size: int,
        binarize: str | None = "dynamic", loss: ELBO | str | None = None, num_particles: int | None = None,
        optim: PyroOptim | Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer] | None = None,
        lr: float = 1e-3, lr_schedule: Callable[[int], float] | None = None, device: str | torch.device = "auto",
        seed: int | None = 0, beta: float | None = None, warmup_epochs: float = 0.0,
        checkpoint: str | Path | None = None, resume: bool = False,
        callbacks: Sequence[Callback | Callable[[int, VAE, History], None]] = (), eval_batch_size: int = 1000,
        test_seed: int = 0, progress: bool = True, check_every: int = 100, validate: bool = False,
        distributed: bool = False, clip_grad_norm: float | None = None, patience: int | None = None,
        lr_scheduler: Callable[[torch.optim.Optimizer], Any] | None = None, scheduler_interval: str = "epoch",
        tensorboard: str | Path | None = None, gradient_compression: str | None = None,
        gradient_allreduce: str = "auto") -> History:
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
    :param loss: any Pyro ELBO, used as it is, or one by name (:data:`pyrovae.infer.LOSSES`):
        ``"trace"`` (the default, :class:`~pyrovae.infer.ReparamTrace_ELBO`; Pyro's own
        ``Trace_ELBO`` when ``validate``), ``"trace-pyro"``, ``"meanfield"``, ``"jit"``,
        ``"iwae"`` for the per-data-point importance-weighted bound, or ``"rws"``
        (:func:`pyrovae.infer.make_loss`).
    :param num_particles: with a named ``loss``, samples of z per data point (default 1, and
        5 for ``"iwae"``). An ELBO object carries its own.
    :param optim: a ``pyro.optim`` optimiser (runs ``SVI.step``), or a factory
        ``params -> torch.optim.Optimizer``; ``None`` is ``torch.optim.Adam(lr=lr)``.
    :param lr: learning rate of the default optimiser.
    :param lr_schedule: ``epoch -> learning rate`` (epochs count from 1), set on every
        parameter group of a torch optimiser at the start of each epoch, so a resumed run
        follows the same schedule (e.g. :func:`exponential_lr`). Not for ``pyro.optim``
        optimisers: pass a Pyro scheduler such as ``pyro.optim.ExponentialLR`` as ``optim``,
        and ``fit`` steps it once per epoch (``ReduceLROnPlateau`` on the held-out ELBO).
    :param device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ...
    :param seed: seeds Pyro/torch at the start of every epoch (``None``: leave the RNG alone).
    :param beta: the KL weight to train with (default: ``vae.beta``).
    :param warmup_epochs: epochs over which β rises linearly from 0 (KL warm-up).
    :param checkpoint: file to write after every epoch (atomically).
    :param resume: continue from ``checkpoint`` if it exists.
    :param callbacks: :class:`~pyrovae.train.Callback` objects (hooks per step and per epoch;
        one may set ``trainer.should_stop``), or functions called as ``cb(epoch, vae, history)``
        after every epoch.
    :param eval_batch_size: batch size of the held-out evaluation.
    :param test_seed: seed of the test set's fixed binarisation.
    :param progress: show a tqdm progress bar.
    :param check_every: steps between checks for a non-finite loss (each check syncs once).
    :param validate: keep Pyro's per-site validation on during training (slower; also runs
        Pyro's own ``Trace_ELBO``, with its model/guide checks, for ``loss="trace"``).
    :param distributed: train data-parallel over the initialised ``torch.distributed``
        process group (see :mod:`pyrovae.distributed`): each rank takes an equal shard of
        ``train_images``, the plate still scales by the full ``N`` (so each rank's loss
        estimates the full-data ELBO), and gradients are averaged across ranks before each
        step. Only rank 0 writes checkpoints and shows progress.
    :param clip_grad_norm: clip the gradients' global 2-norm to this before every step (torch
        optimisers; a ``pyro.optim`` optimiser takes ``clip_args``).
    :param patience: early stopping: stop once the held-out ELBO has not improved for this many
        epochs (needs ``test_images``); with a ``checkpoint`` the best epoch's checkpoint is
        kept as ``best.pt`` beside it.
    :param lr_scheduler: a factory ``optimizer -> torch.optim.lr_scheduler.LRScheduler`` for the
        torch optimiser (e.g. ``lambda opt: torch.optim.lr_scheduler.StepLR(opt, 10)``); its
        state is checkpointed. ``ReduceLROnPlateau`` watches the held-out ELBO (else the
        training ELBO).
    :param scheduler_interval: step ``lr_scheduler`` once per ``"epoch"`` or after every ``"step"``.
    :param tensorboard: a folder for TensorBoard scalars per epoch (ELBO, reconstruction, KL, β,
        learning rate); needs ``pip install pyrovae[tensorboard]``.
    :param gradient_compression: with ``distributed=True``, ``"bf16"`` all-reduces the
        gradients in bfloat16 (half the bytes; the averaged gradient is rounded to 8 significant
        bits before the fp32 update). On one 2-core machine it gains nothing
        (``benchmarks/results/ddp_speed_cpu_compression.json``); it is for links slower than
        loopback. ``None``: fp32.
    :param gradient_allreduce: with ``distributed=True``, how DDP's gradient buckets are
        averaged: ``"shared_memory"`` through memory that every rank maps (CPU ranks on one
        machine; the same values as the process group's fp32 all-reduce, without the loopback
        network), ``"process_group"`` through gloo or nccl, ``"auto"`` (default) shared memory
        where it applies and no compression is asked for, else the process group.

    With a ``checkpoint``, a CSV log of every epoch (the history's columns) is kept beside it,
    with the suffix ``.csv``.

    :returns: the :class:`History`.
    :raises TypeError: for data that are not a tensor (a numpy array: ``torch.as_tensor(x, dtype=torch.float32)``).
    :raises ValueError: for bad data or settings, naming the setting. The data are checked once per
        data set (:func:`pyrovae.models.validation.check_data`), never per step.
    :raises ImportError: for ``tensorboard`` without the tensorboard package.
    :raises TrainingDivergedError: when the loss, the parameters or the held-out ELBO become
        NaN/inf; the message names the last good checkpoint (never one written after it).
    """
    if resume and checkpoint is None:
        raise ValueError("resume=True needs checkpoint=PATH")
    config = TrainConfig(epochs=epochs, batch_size=batch_size, binarize=binarize, lr=lr, seed=seed, beta=beta,
                         warmup_epochs=warmup_epochs, eval_batch_size=eval_batch_size, test_seed=test_seed,
                         check_every=check_every, validate=validate, progress=progress,
                         clip_grad_norm=clip_grad_norm, patience=patience, scheduler_interval=scheduler_interval,
                         tensorboard=tensorboard, gradient_compression=gradient_compression,
                         gradient_allreduce=gradient_allreduce)
    trainer = Trainer(vae, config, loss=resolve_loss(loss, num_particles, validate=validate), optim=optim,
                      lr_schedule=lr_schedule, lr_scheduler=lr_scheduler, device=device, callbacks=callbacks,
                      checkpoint=checkpoint, distributed=distributed)
    trainer.prepare(train_images, test_images)
    if resume:
        trainer.resume()
    return trainer.run()
