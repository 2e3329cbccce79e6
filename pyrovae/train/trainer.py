r"""The training loop behind :func:`pyrovae.train.fit`, in stages.

:class:`Trainer` runs the stages one after another, each in its own short method:
:meth:`~Trainer.prepare` (data checks, device, binarisation, the loader and the step),
:meth:`~Trainer.resume` (from a checkpoint), :meth:`~Trainer.run` (the epochs), and per epoch
:meth:`~Trainer.train_epoch`, :meth:`~Trainer.evaluate` (the held-out ELBO) and
:meth:`~Trainer.end_epoch` (history, log line, checkpoint, callbacks)::

    trainer = Trainer(vae, TrainConfig(epochs=10, batch_size=100), callbacks=[MyCallback()])
    history = trainer.prepare(train_images, test_images).run()

Every epoch starts from an RNG seeded by ``(seed, epoch, rank)``, so a resumed run repeats an
uninterrupted one. The per-step work is the step itself: the losses stay on the device, and
the host synchronises only every ``check_every`` steps to look for a non-finite loss.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NamedTuple

import pyro
import torch
from pyro.infer import ELBO
from pyro.optim import PyroOptim
from tqdm.auto import tqdm

from .._util.device import resolve_device
from ..data import InMemoryLoader
from ..data import binarize as binarize_images
from ..evaluate.bounds import elbo_terms
from ..infer.losses import resolve_loss
from . import checkpoint as ckpt
from . import distributed as ddp
from .callbacks import Callback, EarlyStopping, as_callbacks, step_hook
from .checks import as_tensor, check_training_data
from .config import TrainConfig
from .history import History
from .logs import CSVLog, TensorBoardLog, csv_path, current_lr
from .rng import isolate_first_calls, reads_param_store, seed_epoch
from .schedules import beta_at, make_lr_scheduler, step_epoch_schedulers
from .steps import TorchFactory, make_step

__all__ = ["EpochStats", "TestStats", "Trainer", "TrainingDivergedError"]


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; the message names the epoch and the step."""


class EpochStats(NamedTuple):
    """What one epoch of training steps measured."""

    train_elbo: float  # mean training objective per example (with that epoch's β)
    seconds: float  # wall time of the steps


class TestStats(NamedTuple):
    """The held-out ELBO and its two terms, per example."""

    recon: float  # E_q[log p(x|z)]
    kl: float  # KL(q(z|x) || p(z))
    elbo: float  # recon - kl


class Trainer:
    """Train a VAE by stochastic variational inference (see :func:`pyrovae.train.fit`).

    :param vae: a :class:`~pyrovae.VAE`, or any module whose ``model`` and ``guide`` take the
        batch (e.g. :class:`~pyrovae.models.ConditionalVAE` with ``(x, y)`` batches).
    :param config: the settings.
    :param loss: a Pyro ELBO, a name from :data:`pyrovae.infer.LOSSES`, or ``None`` (``"trace"``).
    :param optim: a ``pyro.optim`` optimiser, a factory ``params -> torch.optim.Optimizer``, or
        ``None`` (Adam with ``config.lr``).
    :param lr_schedule: ``epoch -> learning rate`` for a torch optimiser.
    :param lr_scheduler: a factory ``optimizer -> torch LR scheduler`` for a torch optimiser,
        stepped per epoch or per step (``config.scheduler_interval``).
    :param device: ``"auto"``, ``"cpu"``, ``"cuda"``, ...
    :param callbacks: :class:`Callback` objects or functions ``cb(epoch, vae, history)``.
    :param checkpoint: file written (atomically, by rank 0) after every epoch.
    :param distributed: train data-parallel over the initialised process group.
    :raises ValueError: for settings that do not go together.
    """

    def __init__(self, vae: torch.nn.Module, config: TrainConfig, *, loss: ELBO | str | None = None,
                 optim: PyroOptim | TorchFactory | None = None, lr_schedule: Callable[[int], float] | None = None,
                 device: str | torch.device = "auto", callbacks: Iterable[Callback | Callable] = (),
                 checkpoint: str | Path | None = None, distributed: bool = False,
                 lr_scheduler: Callable[[torch.optim.Optimizer], Any] | None = None) -> None:
        pyro_optim = isinstance(optim, PyroOptim)
        for name, given in (("lr_schedule", lr_schedule), ("lr_scheduler", lr_scheduler)):
            if given is not None and pyro_optim:
                raise ValueError(f"{name} needs a torch optimiser; for a pyro.optim optimiser use its own scheduler "
                                 "(e.g. pyro.optim.ExponentialLR), which fit steps once per epoch")
        if lr_schedule is not None and lr_scheduler is not None:
            raise ValueError("pass lr_schedule (epoch -> lr) or lr_scheduler (a torch scheduler), not both")
        if distributed and pyro_optim:
            raise ValueError("distributed=True needs a torch optimiser (optim=None or a factory), not pyro.optim")
        self.vae, self.config = vae, config
        self.loss = resolve_loss(loss, validate=config.validate)
        self.optim, self.lr_schedule, self.lr_scheduler_factory = optim, lr_schedule, lr_scheduler
        self.device = resolve_device(device)
        self.callbacks = as_callbacks(callbacks)
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.distributed = distributed
        self.rank, self.world = ddp.rank_and_world() if distributed else (0, 1)
        self.progress = config.progress and self.rank == 0
        self.history, self.start_epoch, self.global_step = History(), 0, 0
        self.should_stop = False  # a callback sets it to end training
        self.last_good: int | None = None  # epoch of the last checkpoint this run wrote or resumed from
        self.x_test: torch.Tensor | None = None
        self.lr_scheduler: Any = None  # built in prepare, from lr_scheduler(optimizer)

    # -- preparation ------------------------------------------------------------------------
    def prepare(self, train_images: Any, test_images: Any = None, *, labels: torch.Tensor | None = None) -> Trainer:
        """Check the data once, move model and data to the device, build the loader and the step.

        :param train_images: ``(N, *x_shape)`` tensor, or an object with ``.images``.
        :param test_images: held-out data for :meth:`evaluate`, or ``None``.
        :param labels: ``(N, ...)``, passed to the model as its second argument (``model(x, y)``).
        :returns: ``self``.
        :raises TypeError: for data that are not a tensor (the message names the conversion).
        :raises ValueError: for bad data (:func:`~pyrovae.models.validation.check_data`, once per data set).
        """
        cfg, vae = self.config, self.vae
        x_train = check_training_data(vae, as_tensor(train_images, "train_images"), cfg.binarize, "train_images")
        if labels is not None and len(labels) != len(x_train):
            raise ValueError(f"{len(x_train)} train_images but {len(labels)} labels; pass one label per image")
        if test_images is not None:
            x_test = check_training_data(vae, as_tensor(test_images, "test_images"), cfg.binarize, "test_images")
            self.x_test = self._binarized(x_test.to(self.device), cfg.test_seed)  # fixed: comparable across epochs
        vae.to(self.device)
        for hook in ("sync_param_store", "register_params"):  # once: the torch route skips pyro.module per step
            getattr(vae, hook, lambda: None)()
        self.num_data = len(x_train)
        self._build_loader(x_train, labels)
        self.step = make_step(vae, self.loss, self.optim, cfg.lr, num_data=self.num_data, world=self.world,
                              clip_grad_norm=cfg.clip_grad_norm, gradient_compression=cfg.gradient_compression,
                              gradient_allreduce=cfg.gradient_allreduce)
        self.optimizer = self.step.optimizer
        self.lr_scheduler = make_lr_scheduler(self.lr_scheduler_factory, self.optimizer, cfg.scheduler_interval)
        if cfg.scheduler_interval == "step":
            self.step.scheduler = self.lr_scheduler
        self.callbacks = self._own_callbacks() + self.callbacks
        self.step_hook = step_hook(self.callbacks)
        # what _check_finite looks at: parameters and floating-point buffers (e.g. running statistics)
        self._watched = list(vae.parameters()) + [b for b in vae.buffers() if b.is_floating_point()]
        isolate_first_calls(self.step, vae, self.device, self._first_batch, self._step_context)
        return self

    def _own_callbacks(self) -> list[Callback]:
        # the trainer's own per-epoch work that follows the checkpoint: logs and early stopping
        cfg, writer = self.config, self.rank == 0
        own: list[Callback] = []
        if cfg.patience is not None:
            if self.x_test is None:
                raise ValueError("patience (early stopping on the held-out ELBO) needs test_images")
            own.append(EarlyStopping(cfg.patience, self.checkpoint, write=writer))
        if self.checkpoint is not None and writer:
            own.append(CSVLog(csv_path(self.checkpoint)))
        if cfg.tensorboard is not None and writer:
            own.append(TensorBoardLog(cfg.tensorboard))
        return own

    def _first_batch(self) -> tuple:
        batch = next(iter(self.loader))
        return batch if isinstance(batch, tuple) else (batch,)

    def _binarized(self, x: torch.Tensor, seed: int | None) -> torch.Tensor:
        return binarize_images(x, "static", seed=seed) if self.config.binarize is not None else x

    def _build_loader(self, x_train: torch.Tensor, labels: torch.Tensor | None) -> None:
        cfg = self.config
        if self.distributed:
            ddp.broadcast_parameters(self.vae)  # every rank starts from rank 0's initialisation
            x_train = ddp.shard(x_train, self.rank, self.world)  # (N // world, *x_shape); num_data stays N
            labels = None if labels is None else ddp.shard(labels, self.rank, self.world)
        x_train = x_train.to(self.device)
        labels = None if labels is None else labels.to(self.device)
        if cfg.binarize == "static":
            x_train = self._binarized(x_train, cfg.seed)
        # the loader takes no seed of its own: the trainer re-seeds the global RNG each epoch
        # instead, which makes a resumed run identical to an uninterrupted one
        self.loader = InMemoryLoader(x_train, cfg.batch_size, labels=labels, shuffle=True,
                                     binarize="dynamic" if cfg.binarize == "dynamic" else None)
        self.steps_per_epoch = len(self.loader)
        self.warmup_steps = round(cfg.warmup_epochs * self.steps_per_epoch)
        self.target_beta = float(cfg.beta) if cfg.beta is not None else getattr(self.vae, "beta", None)
        if self.warmup_steps > 0 and self.target_beta is None:
            raise ValueError(f"warmup_epochs needs a model with a beta (KL weight); {type(self.vae).__name__} has none")

    def resume(self) -> Trainer:
        """Continue from the checkpoint if it exists: weights, optimiser state, history, epoch.

        :returns: ``self``.
        :raises ValueError: without a checkpoint path.
        :raises CheckpointError: when the checkpoint is unreadable or from another model.
        """
        if self.checkpoint is None:
            raise ValueError("resume=True needs checkpoint=PATH")
        if not self.checkpoint.exists():
            return self
        payload = ckpt.read_checkpoint(self.checkpoint)
        ckpt.load_into(self.vae, payload, path=self.checkpoint)
        self.vae.to(self.device)
        # pyro.optim keeps the state until its per-parameter optimisers are created lazily
        ckpt.load_optimizer_state(self.optimizer, payload["optimizer"], path=self.checkpoint)
        ckpt.load_scheduler_state(self.lr_scheduler, payload.get("lr_scheduler"), path=self.checkpoint)
        self.history = History.from_dict(payload["history"])
        self.start_epoch = int(payload["epoch"])
        self.global_step = self.start_epoch * self.steps_per_epoch
        self.last_good = self.start_epoch
        return self

    # -- the loop ---------------------------------------------------------------------------
    def run(self) -> History:
        """Train from the epoch after :attr:`start_epoch` up to ``config.epochs``.

        :returns: the :class:`History` (also :attr:`history`).
        :raises TrainingDivergedError: when the loss becomes NaN/inf.
        """
        for cb in self.callbacks:
            cb.on_train_begin(self)
        for epoch in range(self.start_epoch + 1, self.config.epochs + 1):
            if self.should_stop:
                break
            stats = self.train_epoch(epoch)
            self.end_epoch(epoch, stats, self.evaluate(epoch))
        if self.target_beta is not None:
            self.vae.beta = self.target_beta
        self.vae.eval()
        for cb in self.callbacks:
            cb.on_train_end(self)
        return self.history

    def train_epoch(self, epoch: int) -> EpochStats:
        """One pass over the loader, seeded for ``epoch``, with the learning rate and β it has."""
        cfg, n_steps = self.config, self.steps_per_epoch
        self._begin_epoch(epoch)
        losses = torch.zeros(n_steps, device=self.device)  # (steps,) per-step loss, kept on the device
        bar = tqdm(self.loader, total=n_steps, desc=f"epoch {epoch}/{cfg.epochs}", disable=not self.progress,
                   leave=False)
        done, t0 = 0, time.perf_counter()
        with self._step_context():
            for i, batch in enumerate(bar):
                if self.global_step <= self.warmup_steps:  # the warm-up, and its end
                    self._set_beta(self.global_step)
                value = self.step(*batch) if isinstance(batch, tuple) else self.step(batch)
                losses[i] = value
                self.global_step += 1
                done = i + 1
                if done % cfg.check_every == 0 or done == n_steps:
                    self._check_finite(losses, done, epoch, bar)
                if self.step_hook is not None:
                    self.step_hook(self, self.global_step, value)
                    if self.should_stop:
                        break
        if done % cfg.check_every and done < n_steps:  # stopped early: check the steps since the last check
            self._check_finite(losses, done, epoch, bar)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - t0
        epoch_loss = losses[:done].mean()
        if self.world > 1:
            epoch_loss = ddp.mean_across_ranks(epoch_loss)
        return EpochStats(-float(epoch_loss) / self.num_data, seconds)

    def _begin_epoch(self, epoch: int) -> None:
        seed_epoch(self.config.seed, epoch, self.rank)
        self._set_lr(epoch)
        self._set_beta()
        self.vae.train()

    def _set_lr(self, epoch: int) -> None:
        if self.lr_schedule is not None:
            for group in self.optimizer.param_groups:
                group["lr"] = float(self.lr_schedule(epoch))

    def _set_beta(self, step: int | None = None) -> None:
        # per step only during warm-up; otherwise once per epoch
        if self.target_beta is not None:
            step = self.global_step if step is None else step
            self.vae.beta = beta_at(step, self.warmup_steps, self.target_beta)

    def _step_context(self) -> contextlib.ExitStack:
        # SVI with pyro.optim, and a JIT loss, need pyro.module on every call; the torch route does not
        stack = contextlib.ExitStack()
        stack.enter_context(pyro.validation_enabled(self.config.validate))
        registration = getattr(self.vae, "param_registration", None)
        if registration is not None:
            stack.enter_context(registration(isinstance(self.optim, PyroOptim) or reads_param_store(self.loss)))
        return stack

    def _check_finite(self, losses: torch.Tensor, done: int, epoch: int, bar: Any) -> None:
        # steps 1..done of this epoch; the one host sync every check_every steps, parameters included,
        # so that the epoch's last step is checked before the held-out ELBO and the checkpoint
        watched = self._watched
        params_ok = torch.stack([t.detach().isfinite().all() for t in watched]).all() if watched else True
        finite = torch.isfinite(losses[:done])
        if not bool(finite.all() & params_ok):
            if not bool(finite.all()):
                first = int((~finite).nonzero()[0, 0]) + 1
                self._diverged(f"loss became {float(losses[first - 1])} at epoch {epoch}, step {first}")
            since = max(1, done - (done - 1) % self.config.check_every)  # the first step after the last check
            self._diverged(f"parameters became NaN or inf at epoch {epoch}, between steps {since} and {done} "
                           "(the losses were finite: a gradient was not)")
        if self.progress:
            recent = losses[max(0, done - self.config.check_every): done]
            bar.set_postfix(elbo=f"{-float(recent.mean()) / self.num_data:.2f}")

    def _diverged(self, what: str) -> None:
        if self.checkpoint is None:
            kept = ""
        elif self.last_good is None:
            kept = f"; no checkpoint of this run has been written yet, so {self.checkpoint} holds no good state of it"
        else:
            kept = f"; the last good checkpoint is {self.checkpoint} (epoch {self.last_good}), left untouched"
        raise TrainingDivergedError(f"{what}{kept}. Try a smaller learning rate, KL warm-up, or check the data.")

    def evaluate(self, epoch: int | None = None) -> TestStats | None:
        """The held-out ELBO per example with β = 1 (``None`` without test data).

        :param epoch: the epoch just trained, for the error message.
        :raises TrainingDivergedError: when it is not finite.
        """
        if self.x_test is None:
            return None
        self.vae.eval()
        recon, kl = elbo_terms(self.vae, self.x_test, batch_size=self.config.eval_batch_size)  # each (N_test,)
        means = torch.stack([recon.mean(), kl.mean(), (recon - kl).mean()])  # (3,)
        if self.world > 1:  # one held-out ELBO for all ranks: their early-stopping and plateau decisions agree
            means = torch.stack([ddp.mean_across_ranks(m) for m in means])
        stats = TestStats(*map(float, means))
        if not all(map(math.isfinite, stats)):
            self._diverged(f"the held-out ELBO became {stats.elbo} (reconstruction {stats.recon}, KL {stats.kl}) "
                           f"at epoch {epoch}, after step {self.global_step}")
        return stats

    def end_epoch(self, epoch: int, stats: EpochStats, test: TestStats | None) -> None:
        """Record the epoch in the history, log it, step the per-epoch LR schedulers, write the
        checkpoint, then run the callbacks (the trainer's CSV log, TensorBoard scalars and early
        stopping first)."""
        h = self.history
        h.epoch.append(epoch)
        h.train_elbo.append(stats.train_elbo)
        target = self.target_beta
        reached = beta_at(self.global_step, self.warmup_steps, target) if target is not None else None
        h.beta.append(reached)
        h.seconds.append(stats.seconds)
        h.lr.append(current_lr(self.optimizer))
        h.test_recon.append(None if test is None else test.recon)
        h.test_kl.append(None if test is None else test.kl)
        h.test_elbo.append(None if test is None else test.elbo)
        if self.target_beta is not None:
            self.vae.beta = self.target_beta  # the model's own β between epochs
        if self.progress:
            shown = f", test ELBO {test.elbo:.2f}" if test is not None else ""
            tqdm.write(f"epoch {epoch}: train ELBO {stats.train_elbo:.2f}{shown} ({stats.seconds:.1f}s)")
        epoch_scheduler = self.lr_scheduler if self.config.scheduler_interval == "epoch" else None
        step_epoch_schedulers(self.optimizer, epoch_scheduler, -(test.elbo if test is not None else stats.train_elbo))
        self.save_checkpoint(epoch)  # after the schedulers: a resumed run starts from their stepped state
        for cb in self.callbacks:
            cb.on_epoch_end(self, epoch)

    def save_checkpoint(self, epoch: int) -> None:
        """Write the checkpoint for ``epoch`` (rank 0 only; nothing without a path)."""
        if self.checkpoint is None or self.rank != 0:
            return
        ckpt.save_checkpoint(self.checkpoint, self.vae, optimizer=self.optimizer, epoch=epoch,
                             history=self.history.to_dict(), fit_config=self.fit_config(),
                             lr_scheduler=self.lr_scheduler)
        self.last_good = epoch

    def fit_config(self) -> dict[str, Any]:
        """The settings a checkpoint stores: the config, the β trained to and the loss's name."""
        return {**self.config.to_dict(), "beta": self.target_beta, "loss": type(self.loss).__name__}

