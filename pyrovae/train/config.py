"""The settings of a training run, checked once, where they are made.

:class:`TrainConfig` holds every plain setting of :func:`pyrovae.train.fit` (the objects, such
as the loss, the optimiser and the callbacks, go to the :class:`~pyrovae.train.Trainer`).
Checkpoints store it, with the loss's name, as their ``fit_config``.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
from dataclasses import dataclass
from typing import Any

__all__ = ["TrainConfig"]

BINARIZE = ("dynamic", "static", None)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _need(ok: bool, name: str, value: Any, expected: str) -> None:
    if not ok:
        raise ValueError(f"{name} must be {expected}, got {value!r}")

#: the gradient all-reduce's widths under ``distributed=True`` (None: the gradients' own, fp32)
GRADIENT_COMPRESSION = (None, "bf16")
#: how DDP's gradient buckets travel under ``distributed=True`` (:func:`pyrovae.train.distributed.wrap_ddp`)
ALLREDUCE = ("auto", "shared_memory", "process_group")


@dataclass
class TrainConfig:
    """Settings of one training run; see :func:`pyrovae.train.fit` for each in context.

    :raises ValueError: naming the setting, when a value is out of range or of the wrong kind.
    """

    epochs: int  # total epochs; a resumed run continues up to this number
    batch_size: int  # examples per step (per rank when distributed)
    binarize: str | None = "dynamic"  # "dynamic" (fresh draw per batch) | "static" (one draw) | None; test data: once
    lr: float = 1e-3  # learning rate of the default (fused) torch Adam
    seed: int | None = 0  # re-seeds Pyro/torch at every epoch start, so resume == uninterrupted; None: leave the RNG
    beta: float | None = None  # KL weight to train with (None: the model's own vae.beta)
    warmup_epochs: float = 0.0  # epochs of linear KL warm-up from beta = 0
    eval_batch_size: int = 1000  # batch size of the held-out ELBO
    test_seed: int = 0  # seed of the test set's one static binarisation
    check_every: int = 100  # steps between checks for a non-finite loss; each check is one host sync
    validate: bool = False  # Pyro per-site validation and Pyro's own Trace_ELBO (slower)
    progress: bool = True  # tqdm bar and one log line per epoch (rank 0 only)
    clip_grad_norm: float | None = None  # clip the gradients' global 2-norm to this before each step (torch optimisers)
    patience: int | None = None  # stop after this many epochs without a better held-out ELBO; keeps best.pt
    scheduler_interval: str = "epoch"  # when a torch LR scheduler steps: once per "epoch" or after every "step"
    tensorboard: str | None = None  # folder for TensorBoard scalars (ELBO, reconstruction, KL, beta, lr); rank 0
    gradient_compression: str | None = None  # distributed: all-reduce the gradients as "bf16" (None: fp32)
    gradient_allreduce: str = "auto"  # distributed: "shared_memory" (one machine, CPU) | "process_group" | "auto"

    def __post_init__(self) -> None:
        _need(_is_int(self.epochs) and self.epochs >= 0, "epochs", self.epochs, "an integer >= 0")
        _need(_is_int(self.batch_size) and self.batch_size >= 1, "batch_size", self.batch_size, "an integer >= 1")
        if self.binarize not in BINARIZE:
            raise ValueError(f"binarize must be 'dynamic', 'static' or None, got {self.binarize!r}")
        _need(_finite_number(self.lr) and self.lr >= 0, "lr", self.lr, "a finite number >= 0")
        _need(self.seed is None or _is_int(self.seed), "seed", self.seed, "an integer or None")
        _need(self.beta is None or (_finite_number(self.beta) and self.beta >= 0), "beta", self.beta,
              "a finite number >= 0 or None")
        _need(_finite_number(self.warmup_epochs) and self.warmup_epochs >= 0, "warmup_epochs", self.warmup_epochs,
              "a finite number >= 0")
        _need(_is_int(self.eval_batch_size) and self.eval_batch_size >= 1, "eval_batch_size", self.eval_batch_size,
              "an integer >= 1")
        _need(_is_int(self.test_seed), "test_seed", self.test_seed, "an integer")
        _need(_is_int(self.check_every) and self.check_every >= 1, "check_every", self.check_every,
              "an integer >= 1 (steps between NaN checks)")
        _need(self.clip_grad_norm is None or (_finite_number(self.clip_grad_norm) and self.clip_grad_norm > 0),
              "clip_grad_norm", self.clip_grad_norm, "a finite number > 0 or None")
        _need(self.patience is None or (_is_int(self.patience) and self.patience >= 1), "patience", self.patience,
              "an integer >= 1 (epochs without improvement) or None")
        _need(self.scheduler_interval in ("epoch", "step"), "scheduler_interval", self.scheduler_interval,
              "'epoch' or 'step'")
        _need(self.gradient_compression in GRADIENT_COMPRESSION, "gradient_compression", self.gradient_compression,
              "'bf16' or None")
        _need(self.gradient_allreduce in ALLREDUCE, "gradient_allreduce", self.gradient_allreduce,
              " or ".join(repr(a) for a in ALLREDUCE))
        if self.tensorboard is not None:
            self.tensorboard = os.fspath(self.tensorboard)  # a folder; str keeps the config a plain dict

    def to_dict(self) -> dict[str, Any]:
        """The settings as a plain dict (what a checkpoint stores)."""
        return dataclasses.asdict(self)


def _finite_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
