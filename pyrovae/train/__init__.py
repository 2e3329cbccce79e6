"""Training: :func:`fit`, its history, schedules, checkpoints and distributed collectives."""

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .conditional import fit_conditional
from .fitting import TrainingDivergedError, check_training_data, fit
from .history import History
from .schedules import beta_at, exponential_lr

__all__ = [
    "CheckpointError",
    "History",
    "TrainingDivergedError",
    "beta_at",
    "check_training_data",
    "exponential_lr",
    "fit",
    "fit_conditional",
    "load_checkpoint",
    "save_checkpoint",
]
