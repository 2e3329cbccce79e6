"""Training: :func:`fit` and the :class:`Trainer` behind it, with its config, steps, callbacks,
history, schedules, checkpoints and distributed collectives."""

from .callbacks import Callback
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .checks import check_training_data
from .conditional import fit_conditional
from .config import TrainConfig
from .fitting import fit
from .history import History
from .schedules import beta_at, exponential_lr
from .semisupervised import M2History, fit_m2
from .steps import SVIStep, TorchStep, make_step
from .trainer import Trainer, TrainingDivergedError

__all__ = [
    "Callback",
    "CheckpointError",
    "History",
    "M2History",
    "SVIStep",
    "TorchStep",
    "TrainConfig",
    "Trainer",
    "TrainingDivergedError",
    "beta_at",
    "check_training_data",
    "exponential_lr",
    "fit",
    "fit_conditional",
    "fit_m2",
    "load_checkpoint",
    "make_step",
    "save_checkpoint",
]
