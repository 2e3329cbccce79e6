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
    beta: list[float] = field(default_factory=list)  # β at the end of the epoch
    seconds: list[float] = field(default_factory=list)  # wall time of the epoch's training steps

    def to_dict(self) -> dict[str, list]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, list]) -> History:
        return cls(**{k: list(v) for k, v in d.items() if k in {f.name for f in dataclasses.fields(cls)}})

    def __len__(self) -> int:
        return len(self.epoch)
