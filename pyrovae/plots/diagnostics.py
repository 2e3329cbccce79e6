"""Figures of collapse diagnostics: the activity and KL of each latent dimension."""

from __future__ import annotations

import os

import torch
from matplotlib.figure import Figure

from .images import new_figure, save


def unit_activity(
    activity: torch.Tensor,
    kl: torch.Tensor | None = None,
    threshold: float = 0.01,
    title: str = "latent dimensions: activity and KL",
    path: str | os.PathLike | None = None,
) -> Figure:
    """Bars of each dimension's activity Var_x(E_q[z_d]) (log scale, with the active-unit
    threshold) and, if given, its mean KL.

    :param activity: ``(z_dim,)``.
    :param kl: ``(z_dim,)`` mean KL per dimension, nats.
    :param threshold: the active-unit threshold drawn as a line.
    :param title: figure title.
    :param path: where to save.
    """
    a = activity.detach().cpu().clamp_min(1e-8)
    d = torch.arange(len(a))
    panels = 2 if kl is not None else 1
    fig = new_figure((max(4.0, 0.25 * len(a) + 2), 2.6 * panels + 0.4))
    axes = fig.subplots(panels, 1, squeeze=False)[:, 0]
    colors = ["C0" if v > threshold else "C3" for v in a]
    axes[0].bar(d, a, color=colors)
    axes[0].axhline(threshold, color="k", ls="--", lw=1, label=f"threshold {threshold:g} (red: collapsed)")
    axes[0].set_yscale("log")
    axes[0].set_ylabel("Var_x E_q[z_d]")
    axes[0].legend(fontsize=7)
    if kl is not None:
        axes[1].bar(d, kl.detach().cpu(), color=colors)
        axes[1].set_ylabel("mean KL (nats)")
    axes[-1].set_xlabel("latent dimension d")
    fig.suptitle(title)
    fig.tight_layout()
    return save(fig, path)
