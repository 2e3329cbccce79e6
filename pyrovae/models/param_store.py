"""A VAE's parameters in Pyro's param store: the names Pyro gives them, and the values
moving between the store and the networks.

Pyro names a parameter by where it is registered: ``pyro.module("decoder", net)`` stores
``"decoder$$$net.0.weight"``; a :class:`~pyro.nn.PyroModule` part stores ``"prior.loc"``.
Both directions are needed:

- **store to networks** (:func:`adopt`), after ``pyro.get_param_store().load(path)``: the
  loaded values are copied *into the networks' own tensors* and the store is pointed at
  them, so the networks compute with the saved values, ``SVI`` trains the tensors they use,
  and a ``torch.optim`` optimiser built on ``vae.parameters()`` stays valid;
- **networks to store** (:func:`push`), when a store left over from another model of the
  same shape would otherwise shadow this one (``fit`` and checkpoint loading).

Buffers go into the store too, under the names a parameter in their place would have
(``"prior$$$steps.0.arn.permutation"``): a flow's random MADE masks and permutations, or a
batch norm's running statistics, are part of what the networks compute, and a store that
left them out would not round-trip. They are put there with ``store.set_state``, never
through ``pyro.param`` (nor ``store[name] = ...``, which would make them require a
gradient), so no optimiser ever sees them. ``PyroParam`` attributes (e.g. an
``AutoNormal`` guide's) are left alone: Pyro keeps those in step with the store itself.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyro
import torch
from pyro.nn import PyroModule
from pyro.params.param_store import param_with_module_name
from torch import nn
from torch.distributions import constraints

__all__ = ["adopt", "push", "register", "store_names"]


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def store_names(name: str, module: nn.Module) -> Iterator[tuple[str, torch.Tensor, bool]]:
    """``(store name, tensor, is_buffer)`` for every parameter and buffer of the part
    ``name``, named as Pyro names a parameter when the part runs inside :class:`~pyrovae.VAE`.

    :param name: the part's attribute name on the VAE (``"encoder"``, ``"prior"``, ...).
    :param module: the part.
    """
    if isinstance(module, PyroModule):
        yield from _pyro_names(module._pyro_name or name, module)
    else:
        for pname, p in module.named_parameters():
            yield param_with_module_name(name, pname), p, False
        for bname, b in module.named_buffers():
            yield param_with_module_name(name, bname), b, True


def _pyro_names(prefix: str, module: PyroModule) -> Iterator[tuple[str, torch.Tensor, bool]]:
    pyro_params = module.__dict__.get("_pyro_params", {})
    for attr, p in module._parameters.items():
        if p is None or (attr.endswith("_unconstrained") and attr[: -len("_unconstrained")] in pyro_params):
            continue
        yield _join(prefix, attr), p, False
    for attr, b in module._buffers.items():
        if b is not None and attr not in module._non_persistent_buffers_set:
            yield _join(prefix, attr), b, True
    for key, sub in module._modules.items():
        if sub is None:
            continue
        if isinstance(sub, PyroModule):
            yield from _pyro_names(_join(prefix, key), sub)
        else:  # a plain module inside a PyroModule goes through pyro.module under its full name
            yield from store_names(_join(prefix, key), sub)


def _put(full: str, tensor: torch.Tensor, is_buffer: bool) -> None:
    store = pyro.get_param_store()
    if is_buffer:
        # set_state adds entries as they are: a buffer keeps requires_grad=False (and its dtype)
        store.set_state({"params": {full: tensor}, "constraints": {full: constraints.real}})
    else:
        store[full] = tensor


def adopt(name: str, module: nn.Module) -> None:
    """Copy the values Pyro's param store holds for part ``name`` into its own parameters,
    and make the store hold those parameters (store to networks).

    :raises ValueError: when the store holds a tensor of another shape under one of the
        part's names (a store from another model).
    """
    store = pyro.get_param_store()
    for full, p, is_buffer in store_names(name, module):
        if full not in store:
            continue
        stored = store[full]
        if stored is p:
            continue
        if stored.shape != p.shape:
            raise ValueError(
                f"Pyro's param store holds {full!r} with shape {tuple(stored.shape)} but this VAE's {name} "
                f"({type(module).__name__}) has shape {tuple(p.shape)}: the store comes from another model. "
                "Clear it with pyro.clear_param_store(), or put this model's values in it with vae.sync_param_store()"
            )
        with torch.no_grad():
            p.copy_(stored)  # in place: optimisers over vae.parameters() keep their tensors
        _put(full, p, is_buffer)


def push(name: str, module: nn.Module) -> None:
    """Make the names Pyro's param store already holds for part ``name`` point at its
    parameters (networks to store)."""
    store = pyro.get_param_store()
    for full, p, is_buffer in store_names(name, module):
        if full in store and store[full] is not p:
            _put(full, p, is_buffer)


def register(name: str, module: nn.Module | None) -> None:
    """What :class:`~pyrovae.VAE`'s model and guide do for each part on every call:
    :func:`adopt` what the store holds, then register a plain module's parameters with
    ``pyro.module`` so that ``SVI`` and ``pyro.optim`` see them (a ``PyroModule`` registers
    its own, under its own names, as it runs). Buffers new to the store are put in it."""
    if module is None:
        return
    adopt(name, module)
    if not isinstance(module, PyroModule) and any(True for _ in module.parameters()):
        pyro.module(name, module)
    store = pyro.get_param_store()
    for full, b, is_buffer in store_names(name, module):
        if is_buffer and full not in store:
            _put(full, b, True)
