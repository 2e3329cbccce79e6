"""Deprecated path, kept for ``torchrun -m pyrovae.distributed``: see :mod:`pyrovae.cli.distributed`
(the runner) and :mod:`pyrovae.train.distributed` (the collectives)."""

from .cli.distributed import main, spawn_local, train_rank  # noqa: F401
from .train.distributed import (  # noqa: F401
    average_gradients,
    broadcast_parameters,
    mean_across_ranks,
    rank_and_world,
    shard,
)

if __name__ == "__main__":
    main()
