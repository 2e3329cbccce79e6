"""Checkpoints: atomic, durable writes and safe, checked loads.

A checkpoint is a ``torch.save`` file of plain containers and tensors only, so it loads with
``torch.load(weights_only=True)``. It holds the network state (``state_dict``), Pyro's
param-store state, the optimiser state, the epoch, the history, the config and the shapes the
model was given or inferred (``vae.shapes``: a VAE of a user's own modules restores them on
loading, so data are checked against them before any batch). It is
serialised in memory and written with :func:`pyrovae._util.files.atomic_write_bytes`: to a
temporary file in the same folder, fsynced, and renamed over the target, so a crash mid-write
never leaves a corrupt checkpoint behind, and a full disk is a clear error.

Loading trusts nothing in the file: every field is checked for its kind before it is used
(:class:`CheckpointError` names the field), and a model is rebuilt from the stored config only
after its size has been checked against the weights the file really holds.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import math
import os
from pathlib import Path
from typing import Any

import pyro
import torch

from .._util.files import atomic_write_bytes
from ..models import VAE, HierarchicalVAE
from ..models.config import VAEConfig, build_vae
from ..models.hierarchical_config import HierarchicalConfig, build_hierarchical_vae

FORMAT = "pyrovae-checkpoint"
VERSION = 1

# what a stored config may hold before it is even parsed: short lists, bounded numbers and strings
# a table of D columns stores D per-column statistics; the model size is bounded separately
MAX_LIST, MAX_INT, MAX_STR, MAX_DEPTH = 2**20, 2**31 - 1, 4096, 6
# stored shapes: at most this many dimensions and this many numbers per data point
MAX_DIMS, MAX_NUMEL = 8, 2**31 - 1
# a model rebuilt from a config may have at most this many parameters more than the file stores
# (10M parameters, 40 MB, are always allowed; the flows' bound below is loose by up to 16x)
SLACK_FACTOR, SLACK_PARAMETERS = 64, 10_000_000


class CheckpointError(ValueError):
    """A checkpoint is truncated, corrupt, malformed, or from another configuration."""


def _malformed(path: Any, field: str, problem: str) -> CheckpointError:
    return CheckpointError(f"checkpoint {path} is malformed: field {field!r} {problem}")


def optimizer_state(optimizer: Any) -> dict | None:
    """State of a ``torch.optim`` optimiser or a ``pyro.optim`` wrapper (or ``None``)."""
    if optimizer is None:
        return None
    if hasattr(optimizer, "get_state"):  # pyro.optim.PyroOptim
        return {"kind": "pyro", "state": optimizer.get_state()}
    return {"kind": "torch", "state": optimizer.state_dict()}


def load_optimizer_state(optimizer: Any, state: dict | None, *, path: Any = "checkpoint") -> None:
    """Put a stored optimiser state into ``optimizer``.

    :raises CheckpointError: naming the ``optimizer`` field, when the state is of the other kind
        (``pyro.optim`` against ``torch.optim``) or does not fit this optimiser.
    """
    if optimizer is None or state is None:
        return
    kind = "pyro" if hasattr(optimizer, "set_state") else "torch"
    if state.get("kind") != kind:
        raise _malformed(path, "optimizer", f"holds a {state.get('kind')} optimiser state, but this run uses a "
                                            f"{kind} optimiser; train on with the optimiser it was written with")
    try:
        if kind == "pyro":
            optimizer.set_state(state["state"])
        else:
            optimizer.load_state_dict(state["state"])
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as e:
        raise _malformed(path, "optimizer", f"does not fit this optimiser ({type(e).__name__}: {e})") from e


def load_scheduler_state(scheduler: Any, state: dict | None, *, path: Any = "checkpoint") -> None:
    """Put a stored LR-scheduler state into ``scheduler`` (nothing when both are absent).

    :raises CheckpointError: naming the ``lr_scheduler`` field, when one of the two is missing
        or the state does not fit.
    """
    if scheduler is None and state is None:
        return
    if scheduler is None or state is None:
        has = "no" if state is None else "a"
        own = "a" if scheduler is not None else "no"
        raise _malformed(path, "lr_scheduler", f"is {has} scheduler state, but this run has {own} lr_scheduler; "
                                               "resume with the settings the checkpoint was written with")
    try:
        scheduler.load_state_dict(state)
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise _malformed(path, "lr_scheduler", f"does not fit this scheduler ({type(e).__name__}: {e})") from e


def save_checkpoint(
    path: str | os.PathLike,
    vae: VAE,
    *,
    optimizer: Any = None,
    epoch: int = 0,
    history: dict | None = None,
    fit_config: dict | None = None,
    extra: dict | None = None,
    lr_scheduler: Any = None,
) -> None:
    """Write a checkpoint atomically and durably.

    :param path: target file.
    :param vae: the model.
    :param optimizer: a torch or Pyro optimiser whose state to keep.
    :param epoch: the number of finished epochs.
    :param history: the training history as a dict.
    :param fit_config: the training settings, for resuming.
    :param extra: anything else made of plain containers and tensors.
    :param lr_scheduler: a torch LR scheduler whose state to keep.
    :raises DiskFullError: when the disk is full (an ``OSError``); the old file is then intact.
    """
    store = pyro.get_param_store()
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "config": dict(vae.config),
        "shapes": getattr(vae, "shapes", None),
        "fit_config": dict(fit_config or {}),
        "epoch": int(epoch),
        "model_state": {k: v.detach().cpu() for k, v in vae.state_dict().items()},
        "param_store": {k: v.detach().cpu() for k, v in store._params.items()},
        "optimizer": optimizer_state(optimizer),
        "lr_scheduler": lr_scheduler.state_dict() if lr_scheduler is not None else None,
        "history": history or {},
        "extra": extra or {},
    }
    buffer = io.BytesIO()  # serialised in memory, so that a full disk surfaces as the OSError it is
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getbuffer())


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Load a checkpoint's payload safely (``weights_only=True``) and check every field's kind.

    :raises CheckpointError: when the file is missing, truncated, corrupt, not a checkpoint, or
        a field is missing or of the wrong kind (the message names it).
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
    check_payload(payload, path)
    return payload


def _need(ok: bool, path: Any, field: str, problem: str) -> None:
    if not ok:
        raise _malformed(path, field, problem)


def _tensor_dict(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())


def check_payload(payload: dict, path: Any = "checkpoint") -> None:
    """Check the kind of every field of a checkpoint payload.

    :raises CheckpointError: naming the first field that is missing or of the wrong kind.
    """
    missing = [k for k in ("version", "config", "epoch", "model_state", "optimizer", "history") if k not in payload]
    _need(not missing, path, missing[0] if missing else "", "is missing")
    version = payload["version"]
    _need(type(version) is int and 1 <= version <= VERSION, path, "version",
          f"must be an integer from 1 to {VERSION} (this pyrovae's format), got {version!r}")
    for field in ("config", "fit_config", "history", "extra"):
        _need(isinstance(payload.get(field, {}), dict), path, field, "must be a dict")
    epoch = payload["epoch"]
    _need(type(epoch) is int and epoch >= 0, path, "epoch", f"must be an integer >= 0, got {epoch!r}")
    _need(_tensor_dict(payload["model_state"]), path, "model_state", "must map names to tensors")
    _need(_tensor_dict(payload.get("param_store", {})), path, "param_store", "must map names to tensors")
    opt = payload["optimizer"]
    _need(opt is None or (isinstance(opt, dict) and opt.get("kind") in ("torch", "pyro")
                          and isinstance(opt.get("state"), dict)), path, "optimizer",
          "must be None or {'kind': 'torch' | 'pyro', 'state': dict}")
    _need(payload.get("lr_scheduler") is None or isinstance(payload["lr_scheduler"], dict), path, "lr_scheduler",
          "must be None or a scheduler's state dict")
    history = payload["history"]
    _need(all(isinstance(v, list) for v in history.values()), path, "history", "must map names to lists")
    _need(len({len(v) for v in history.values()}) <= 1, path, "history", "has lists of different lengths")
    _check_config_values(payload["config"], path, "config", 0)
    _check_shapes(payload.get("shapes"), path)


def _positive(value: Any) -> bool:
    return type(value) is int and 1 <= value <= MAX_INT


def _check_shapes(shapes: Any, path: Any) -> None:
    # optional (older files have none): {"x_shape": [d, ...] or None, "z_dim": k or None}
    if shapes is None:
        return
    _need(isinstance(shapes, dict) and set(shapes) <= {"x_shape", "z_dim"}, path, "shapes",
          "must be None or a dict with the keys 'x_shape' and 'z_dim'")
    x_shape, z_dim = shapes.get("x_shape"), shapes.get("z_dim")
    _need(x_shape is None or (isinstance(x_shape, list) and 1 <= len(x_shape) <= MAX_DIMS
                              and all(_positive(d) for d in x_shape) and math.prod(x_shape) <= MAX_NUMEL),
          path, "shapes.x_shape", f"must be None or a list of 1 to {MAX_DIMS} positive integers of product at most "
                                  f"{MAX_NUMEL}, got {x_shape!r}")
    _need(z_dim is None or _positive(z_dim), path, "shapes.z_dim", f"must be None or a positive integer, got {z_dim!r}")


def _check_config_values(value: Any, path: Any, field: str, depth: int) -> None:
    # bounded before anything is built from it: a crafted config must not make the loader allocate
    _need(depth <= MAX_DEPTH, path, field, f"is nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        _need(all(isinstance(k, str) for k in value), path, field, "must have string keys")
        for k, v in value.items():
            _check_config_values(v, path, f"{field}.{k}", depth + 1)
    elif isinstance(value, (list, tuple)):
        _need(len(value) <= MAX_LIST, path, field, f"has {len(value)} items (at most {MAX_LIST})")
        for i, v in enumerate(value):
            _check_config_values(v, path, f"{field}[{i}]", depth + 1)
    elif isinstance(value, str):
        _need(len(value) <= MAX_STR, path, field, f"is a string of {len(value)} characters (at most {MAX_STR})")
    elif isinstance(value, int) and not isinstance(value, bool):
        _need(abs(value) <= MAX_INT, path, field, f"is {value}, out of range (|value| <= {MAX_INT})")
    else:
        _need(value is None or isinstance(value, (bool, float)), path, field,
              f"must be a number, string, list, dict or None, got {type(value).__name__}")


def _normalised(config: dict) -> dict:
    # fill in defaults, so a checkpoint written before a config field existed still matches
    if not config:
        return {}
    try:
        return VAEConfig.from_dict(config).to_dict()
    except (TypeError, ValueError):
        return dict(config)


def load_into(vae: VAE, payload: dict, *, path: str | os.PathLike = "checkpoint") -> None:
    """Load the network state from ``payload`` into ``vae``, checking that they match. Shapes
    the VAE does not know yet (a VAE of plain modules, before its first batch) are taken from
    the stored ``shapes`` first (:meth:`~pyrovae.VAE.adopt_shapes`).

    :raises CheckpointError: when the configs, the stored shapes or the parameter shapes differ.
    """
    theirs_cfg, own_cfg = _normalised(payload["config"]), _normalised(vae.config)
    if theirs_cfg and own_cfg and theirs_cfg != own_cfg:
        diff = sorted(k for k in set(theirs_cfg) | set(own_cfg) if theirs_cfg.get(k) != own_cfg.get(k))
        raise CheckpointError(
            f"checkpoint {path} is from another config: fields {diff} differ "
            f"(checkpoint: {[theirs_cfg.get(k) for k in diff]}, model: {[own_cfg.get(k) for k in diff]})"
        )
    shapes = payload.get("shapes")
    adopt = shapes is not None and hasattr(vae, "adopt_shapes")
    before = (vae.x_shape, vae.z_dim, vae.__dict__.get("_z_from"), vae.prior) if adopt else None
    try:
        if adopt:
            try:
                vae.adopt_shapes(shapes)  # before the state comparison: a prior made from z_dim has buffers
            except ValueError as e:
                raise CheckpointError(f"checkpoint {path} is for a model of other shapes: {e}") from e
        _check_state(vae.state_dict(), payload["model_state"], path)
    except CheckpointError:
        if before is not None:  # a failed load leaves the VAE as it was
            vae.x_shape, vae.z_dim, vae.__dict__["_z_from"], vae.prior = before
        raise
    vae.load_state_dict(payload["model_state"])
    if hasattr(vae, "sync_param_store"):  # a VAE; M2 and other PyroModules register on every call
        vae.sync_param_store()


def _check_state(own: dict, theirs: dict, path: Any) -> None:
    missing, unexpected = sorted(set(own) - set(theirs)), sorted(set(theirs) - set(own))
    wrong = sorted(k for k in set(own) & set(theirs) if own[k].shape != theirs[k].shape)
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"checkpoint {path} does not match this model: missing {missing[:5]}, unexpected {unexpected[:5]}, "
            f"wrong shape {[(k, tuple(theirs[k].shape), tuple(own[k].shape)) for k in wrong[:5]]}"
        )


def _parameter_bound(config: VAEConfig) -> int:
    """An upper bound on the number of parameters and buffers of ``build_vae(config)``, found
    without allocating them: the parts without flows are built on the meta device (exact); the
    flows' autoregressive networks, whose masks need real tensors, are bounded by their layer sizes."""
    prior = "standard_normal" if config.prior == "flow" else config.prior
    plain = dataclasses.replace(config, guide_flows=0, prior=prior)
    with torch.device("meta"):
        vae = build_vae(plain)
    total = sum(t.numel() for t in vae.state_dict().values())
    context = vae.encoder.head.linear.in_features if hasattr(vae.encoder, "head") else 4 * config.z_dim
    total += (config.prior_flows if config.prior == "flow" else 0) * _made_bound(config.z_dim, 0, config.flow_hidden)
    return total + config.guide_flows * _made_bound(config.z_dim, context, config.flow_hidden)


def _made_bound(z_dim: int, context: int, hidden: tuple[int, ...] | None) -> int:
    """An upper bound on the weights of one autoregressive flow step over ``z_dim`` with a
    ``context``-wide input beside it (0: none) and MADE widths ``hidden`` (None: ``2 * z_dim``)."""
    layers = [z_dim + context, *(hidden or (2 * z_dim,)), 32 * z_dim]  # 32 per output: above the spline's 3 bins - 1
    return sum((a + 1) * b for a, b in itertools.pairwise(layers))


def _rebuild_hierarchical(payload: dict, path: Any) -> HierarchicalVAE:
    # the size of what the config describes, built on the meta device (no memory), before the real build
    try:
        config = HierarchicalConfig.from_dict(payload["config"])
        with torch.device("meta"):  # a flow's masks need real tensors: its steps are bounded by their sizes
            plain = dataclasses.replace(config, prior="standard_normal") if config.prior == "flow" else config
            bound = sum(t.numel() for t in build_hierarchical_vae(plain).state_dict().values())
        if config.prior == "flow":
            bound += config.prior_flows * _made_bound(config.z_dims[-1], 0, config.flow_hidden)
    except (TypeError, ValueError, AttributeError, RuntimeError) as e:
        raise _malformed(path, "config", f"does not describe a hierarchical VAE ({type(e).__name__}: {e})") from e
    _check_size(payload, bound, path)
    return build_hierarchical_vae(config)


def _check_size(payload: dict, bound: int, path: Any) -> None:
    stored = sum(t.numel() for t in payload["model_state"].values())
    if bound > SLACK_FACTOR * stored + SLACK_PARAMETERS:
        raise _malformed(path, "config", f"describes a model of up to {bound:,} parameters, but the file holds "
                                         f"{stored:,}: refusing to build it")


def _rebuild(payload: dict, path: Any) -> VAE | HierarchicalVAE:
    # check the config and the size of what it describes before building anything
    if not payload["config"]:
        raise CheckpointError(f"checkpoint {path} has no config to rebuild the model from; pass vae=")
    if payload["config"].get("model") == "hierarchical":  # HierarchicalConfig.model
        return _rebuild_hierarchical(payload, path)
    try:
        config = VAEConfig.from_dict(payload["config"])
        bound = _parameter_bound(config)
    except (TypeError, ValueError, AttributeError, RuntimeError) as e:
        raise _malformed(path, "config", f"does not describe a VAE ({type(e).__name__}: {e})") from e
    _check_size(payload, bound, path)
    try:
        return build_vae(config)
    except (TypeError, ValueError, RuntimeError) as e:
        raise _malformed(path, "config", f"does not describe a VAE ({type(e).__name__}: {e})") from e


def load_checkpoint(path: str | os.PathLike, vae: VAE | HierarchicalVAE | None = None, *,
                    map_location: str | torch.device = "cpu") -> tuple[VAE | HierarchicalVAE, dict]:
    """Load a checkpoint into ``vae`` (or into a VAE rebuilt from its config).

    :param path: the checkpoint file.
    :param vae: a model to load into; ``None`` rebuilds one with :func:`pyrovae.models.build_vae`
        (or :func:`~pyrovae.models.build_hierarchical_vae` for a config of ``model: "hierarchical"``),
        after checking the config's size against the stored weights.
    :param map_location: where to put the model.
    :returns: ``(vae, payload)``.
    :raises CheckpointError: for an unreadable, malformed or mismatched checkpoint.
    """
    payload = read_checkpoint(path)
    if vae is None:
        vae = _rebuild(payload, path)
    load_into(vae, payload, path=path)
    return vae.to(map_location), payload
