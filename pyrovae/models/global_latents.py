r"""Global latent variables of a VAE: random weights shared by every data point.

A decoder written as a :class:`~pyro.nn.PyroModule` with :class:`~pyro.nn.PyroSample`
weights is a Bayesian decoder, :math:`W \sim p(W)`. Its weights are *global*: one draw per
step serves the whole batch, so the model must draw them outside the ``"data"`` plate
(inside it they would be drawn once per data point). PyroModule draws a ``PyroSample``
attribute lazily, the first time it is read inside the module's Pyro context, and caches it
until that context closes. :func:`draw_outside_plate` opens the context and reads every
such attribute before the plate opens; inside the plate the decoder then reads the cached
draws. The global sites are trained by a guide of their own (an ``AutoNormal`` over them by
default) that :class:`~pyrovae.VAE`'s guide runs next to the amortised q(z|x):

.. math::

    q(W, z_{1:N} \mid x_{1:N}) = q_\psi(W) \prod_n q_\phi(z_n \mid x_n), \qquad
    \mathcal{L} = \sum_n \mathbb{E}_q[\log p(x_n \mid z_n, W)] - \sum_n \mathrm{KL}(q_\phi(z_n|x_n) \,\|\, p(z_n))
        - \mathrm{KL}(q_\psi(W) \,\|\, p(W)).

With ``num_data=N`` the plate scales the local terms by ``N / batch``; the global KL is
counted once, as in the full-data objective.

References:

1. Kingma, D. P. and Welling, M. (2014). Auto-Encoding Variational Bayes. ICLR
   (Appendix F: a variational posterior over the decoder's parameters).
2. Blundell, C., Cornebise, J., Kavukcuoglu, K. and Wierstra, D. (2015). Weight
   Uncertainty in Neural Networks. ICML.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from typing import Any

import pyro
import torch
from pyro import poutine
from pyro.infer.autoguide import AutoNormal
from pyro.infer.autoguide.initialization import init_to_sample
from pyro.nn import PyroModule
from pyro.poutine.messenger import Messenger
from torch import nn

__all__ = [
    "GlobalLatents",
    "GlobalSite",
    "draw",
    "draw_outside_plate",
    "find_global_sites",
    "initialise",
    "make_global_guide",
]

#: the sites a global guide must not cover: the local latent and the observation
LOCAL_SITES = ("z", "x")

GlobalSite = tuple[PyroModule, str]  # (module owning a PyroSample attribute, its name)


def find_global_sites(parts: dict[str, nn.Module | None]) -> list[GlobalSite]:
    """Every ``PyroSample`` attribute of the model-side parts (decoder, prior, likelihood).

    :param parts: part name -> module.
    :raises TypeError: when a ``PyroModule`` with ``PyroSample`` attributes sits inside a
        plain ``nn.Module``: Pyro cannot name its sites (every layer's would be called
        ``"weight"``), so the part itself must be a ``PyroModule``.
    """
    sites: list[GlobalSite] = []
    for name, part in parts.items():
        if part is not None:
            sites.extend(_walk(name, part, plain_above=None))
    return sites


def _walk(path: str, module: nn.Module, plain_above: str | None) -> Iterator[GlobalSite]:
    samples = module.__dict__.get("_pyro_samples", {})
    if samples and plain_above is not None:
        raise TypeError(
            f"{path} ({type(module).__name__}) has PyroSample attributes {sorted(samples)} but sits inside the plain "
            f"nn.Module {plain_above}, so Pyro cannot give its sites names. Make every module from the part down to "
            "it a PyroModule (class MyDecoder(PyroModule), PyroModule[nn.Sequential], PyroModule[nn.Linear])"
        )
    for attr in samples:
        yield module, attr
    if not isinstance(module, PyroModule) and plain_above is None:
        plain_above = f"{path} ({type(module).__name__})"
    for key, sub in module._modules.items():
        if sub is not None:
            yield from _walk(f"{path}.{key}", sub, plain_above)


class _SiteShape(Messenger):
    # Predictive hands posterior draws of a global site over padded with singleton plate
    # dims, (1, H, K) for an (H, K) weight, so that they broadcast; a layer needs the
    # weight's own shape (F.linear refuses a 3-D weight)
    def _postprocess_message(self, msg: dict) -> None:
        value = msg.get("value")
        if msg["type"] != "sample" or not isinstance(value, torch.Tensor) or torch.jit.is_tracing():
            return  # (Predictive never traces; a traced size compared in Python would warn)
        shape = msg["fn"].shape()
        if value.shape != shape and value.numel() == math.prod(shape):
            msg["value"] = value.reshape(shape)


@contextlib.contextmanager
def draw_outside_plate(context: Any, sites: list[GlobalSite]) -> Iterator[None]:
    """Within this block every global site has been drawn once, and reading it again (as
    the decoder does inside the plate) gives the same draw.

    :param context: the VAE's Pyro context (``vae._pyro_context``), shared by its parts.
    :param sites: from :func:`find_global_sites`.
    """
    with context:
        with _SiteShape():
            for owner, attr in sites:
                getattr(owner, attr)  # PyroModule samples it here, once, and caches it in the context
        yield


def make_global_guide(spec: str | Callable | None, model: Callable) -> Callable | None:
    """The guide for the global sites of ``model``.

    :param spec: ``"auto"``: an :class:`~pyro.infer.autoguide.AutoNormal` started at a
        draw from the prior with scale 0.01 (a small noise, so the decoder starts as a
        usable network); a callable ``model -> guide`` such as ``AutoNormal`` or
        ``functools.partial(AutoLowRankMultivariateNormal, rank=10)``; or ``None``.
    :param model: the VAE's model; the guide sees it with the local sites hidden.
    """
    if spec is None:
        return None
    blocked = poutine.block(model, hide=list(LOCAL_SITES))
    if spec == "auto":
        return AutoNormal(blocked, init_loc_fn=init_to_sample, init_scale=0.01)
    if not callable(spec):
        raise TypeError(f"global_guide must be 'auto', None or a callable model -> guide, got {spec!r}")
    return spec(blocked)


def initialise(guide: Callable) -> None:
    """Run a new global guide once on the generative model (``x=None, batch_size=1``), so an
    autoguide creates its parameters now: ``vae.parameters()`` then includes them, for a
    ``torch.optim`` optimiser and for ``state_dict``. The run leaves Pyro's param store and
    any active handlers untouched."""
    with pyro.get_param_store().scope(), poutine.block():
        guide(None, batch_size=1)


@torch.no_grad()
def draw(guide: Callable) -> dict[str, torch.Tensor]:
    """One draw of the global sites from ``guide``, ``{site name: value}`` (an autoguide's
    auxiliary sites left out), leaving any active handlers untouched."""
    trace = poutine.block(poutine.trace(guide).get_trace)(None, batch_size=1)
    return {
        name: site["value"]
        for name, site in trace.nodes.items()
        if site["type"] == "sample" and not site["is_observed"] and not site["infer"].get("is_auxiliary")
    }


class GlobalLatents:
    """The global-site methods of :class:`~pyrovae.VAE` (a mixin): finding the sites outside the
    data plate (a Bayesian decoder's ``PyroSample`` weights), drawing them once per step, and
    conditioning on one draw of the global guide. Expects ``decoder``, ``prior``,
    ``likelihood``, ``global_guide`` and ``_pyro_context`` on ``self``."""

    def _global_sites(self) -> list:
        sites = self.__dict__.get("_sites")
        if sites is None:
            parts = {name: getattr(self, name, None) for name in ("decoder", "prior", "likelihood")}
            sites = self.__dict__["_sites"] = find_global_sites(parts)
        return sites

    def _draw_globals(self) -> contextlib.AbstractContextManager:
        sites = self._global_sites()
        return draw_outside_plate(self._pyro_context, sites) if sites else contextlib.nullcontext()

    def sample_globals(self) -> dict[str, torch.Tensor]:
        """One draw of the global sites from the global guide, ``{site name: value}``."""
        if self.global_guide is None:
            raise ValueError("this VAE has no global guide (its model has no global sites, or global_guide=None)")
        return draw(self.global_guide)

    @contextlib.contextmanager
    def condition_globals(self, values: dict[str, torch.Tensor] | None = None):
        """Within this block the global sites (a Bayesian decoder's weights) take ``values``
        (default: one draw of the global guide), so ``decode``, ``sample`` and the
        evaluation functions use one posterior network rather than prior draws::

            with vae.condition_globals():
                recon, kl = evaluate.elbo_terms(vae, x_test)

        :returns: (as the block's target) the values used.
        """
        values = self.sample_globals() if values is None else values
        with poutine.condition(data=values):
            yield values
