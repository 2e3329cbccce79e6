"""Checkpoints: atomic writes and safe, checked loads.

A checkpoint is a ``torch.save`` file of plain containers and tensors only, so it loads with
``torch.load(weights_only=True)``. It holds the network state (``state_dict``), Pyro's
param-store state, the optimiser state, the epoch, the history and the config. It is written
to a temporary file in the same folder and renamed over the target, so a crash mid-write
never leaves a corrupt checkpoint behind.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pyro
import torch

from .._util.files import atomic_write
from ..models import VAE
from ..models.config import VAEConfig, build_vae

FORMAT = "pyrovae-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint is truncated, corrupt, or from another configuration."""


def optimizer_state(optimizer: Any) -> dict | None:
    """State of a ``torch.optim`` optimiser or a ``pyro.optim`` wrapper (or ``None``)."""
    if optimizer is None:
        return None
    if hasattr(optimizer, "get_state"):  # pyro.optim.PyroOptim
        return {"kind": "pyro", "state": optimizer.get_state()}
    return {"kind": "torch", "state": optimizer.state_dict()}


def load_optimizer_state(optimizer: Any, state: dict | None) -> None:
    if optimizer is None or state is None:
        return
    if state["kind"] == "pyro":
        optimizer.set_state(state["state"])
    else:
        optimizer.load_state_dict(state["state"])


def save_checkpoint(
    path: str | os.PathLike,
    vae: VAE,
    *,
    optimizer: Any = None,
    epoch: int = 0,
    history: dict | None = None,
    fit_config: dict | None = None,
    extra: dict | None = None,
) -> None:
    """Write a checkpoint atomically.

    :param path: target file.
    :param vae: the model.
    :param optimizer: a torch or Pyro optimiser whose state to keep.
    :param epoch: the number of finished epochs.
    :param history: the training history as a dict.
    :param fit_config: the training settings, for resuming.
    :param extra: anything else made of plain containers and tensors.
    """
    store = pyro.get_param_store()
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "config": dict(vae.config),
        "fit_config": dict(fit_config or {}),
        "epoch": int(epoch),
        "model_state": {k: v.detach().cpu() for k, v in vae.state_dict().items()},
        "param_store": {k: v.detach().cpu() for k, v in store._params.items()},
        "optimizer": optimizer_state(optimizer),
        "history": history or {},
        "extra": extra or {},
    }
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Load a checkpoint's payload safely (``weights_only=True``) and check its format.

    :raises CheckpointError: when the file is missing, truncated, corrupt or not a checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, bad pickle, ...
        raise CheckpointError(
            f"checkpoint {path} is truncated or corrupt and cannot be read ({type(e).__name__}: {e})"
        ) from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a pyrovae checkpoint (expected format {FORMAT!r})")
    return payload


def _normalised(config: dict) -> dict:
    # fill in defaults, so a checkpoint written before a config field existed still matches
    if not config:
        return {}
    try:
        return VAEConfig.from_dict(config).to_dict()
    except (TypeError, ValueError):
        return dict(config)


def load_into(vae: VAE, payload: dict, *, path: str | os.PathLike = "checkpoint") -> None:
    """Load the network state from ``payload`` into ``vae``, checking that they match.

    :raises CheckpointError: when the configs or parameter shapes differ.
    """
    theirs_cfg, own_cfg = _normalised(payload["config"]), _normalised(vae.config)
    if theirs_cfg and own_cfg and theirs_cfg != own_cfg:
        diff = sorted(k for k in set(theirs_cfg) | set(own_cfg) if theirs_cfg.get(k) != own_cfg.get(k))
        raise CheckpointError(
            f"checkpoint {path} is from another config: fields {diff} differ "
            f"(checkpoint: {[theirs_cfg.get(k) for k in diff]}, model: {[own_cfg.get(k) for k in diff]})"
        )
    own = vae.state_dict()
    theirs = payload["model_state"]
    missing, unexpected = sorted(set(own) - set(theirs)), sorted(set(theirs) - set(own))
    wrong = sorted(k for k in set(own) & set(theirs) if own[k].shape != theirs[k].shape)
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"checkpoint {path} does not match this model: missing {missing[:5]}, unexpected {unexpected[:5]}, "
            f"wrong shape {[(k, tuple(theirs[k].shape), tuple(own[k].shape)) for k in wrong[:5]]}"
        )
    vae.load_state_dict(theirs)
    vae.sync_param_store()


def load_checkpoint(path: str | os.PathLike, vae: VAE | None = None, *, map_location: str | torch.device = "cpu") -> tuple[VAE, dict]:
    """Load a checkpoint into ``vae`` (or into a VAE rebuilt from its config).

    :param path: the checkpoint file.
    :param vae: a model to load into; ``None`` rebuilds one with :func:`pyrovae.builder.build_vae`.
    :param map_location: where to put the model.
    :returns: ``(vae, payload)``.
    """
    payload = read_checkpoint(path)
    if vae is None:
        if not payload["config"]:
            raise CheckpointError(f"checkpoint {path} has no config to rebuild the model from; pass vae=")
        vae = build_vae(payload["config"])
    load_into(vae, payload, path=path)
    return vae.to(map_location), payload
