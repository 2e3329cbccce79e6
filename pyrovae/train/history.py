"""The per-epoch record of a training run."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

__all__ = ["History"]


@dataclass
class History:
    """Per-epoch record of a run. ELBOs are per example, in nats."""

    epoch: list[int] = field(default_factory=list)  # 1-based epoch numbers
    train_elbo: list[float] = field(default_factory=list)  # mean training objective (with that epoch's β)
    test_elbo: list[float | None] = field(default_factory=list)  # held-out ELBO (β = 1)
    test_recon: list[float | None] = field(default_factory=list)  # held-out E_q[log p(x|z)]
    test_kl: list[float | None] = field(default_factory=list)  # held-out KL(q(z|x) || p(z))
    beta: list[float] = field(default_factory=list)  # β reached at the end of the epoch (rising during warm-up)
    seconds: list[float] = field(default_factory=list)  # wall time of the epoch's training steps
    lr: list[float | None] = field(default_factory=list)  # learning rate at the epoch's end (before epoch schedulers)

    def to_dict(self) -> dict[str, list]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, list]) -> History:
        """The history from :meth:`to_dict`; a field an older record lacks is filled with ``None``."""
        n = len(d.get("epoch", ()))
        return cls(**{f.name: list(d[f.name]) if f.name in d else [None] * n for f in dataclasses.fields(cls)})

    def best_epoch(self) -> int | None:
        """The epoch with the highest held-out ELBO (the first of equals), or ``None`` without one."""
        scored = [(e, t) for e, t in zip(self.epoch, self.test_elbo) if t is not None]
        return max(scored, key=lambda et: (et[1], -et[0]))[0] if scored else None

    def __len__(self) -> int:
        return len(self.epoch)
