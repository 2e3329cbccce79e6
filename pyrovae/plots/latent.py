"""Figures of latent codes."""

from __future__ import annotations

import os

import torch
from matplotlib.figure import Figure

from .images import new_figure, save


def latent_scatter(
    z2: torch.Tensor,
    labels: torch.Tensor | None = None,
    title: str = "latent means",
    xlabel: str = "z[0]",
    ylabel: str = "z[1]",
    path: str | os.PathLike | None = None,
    ax=None,
    max_points: int = 10000,
) -> Figure:
    """Scatter of 2-D latent codes coloured by label (digit).

    :param z2: ``(N, 2)`` codes (already projected).
    :param labels: ``(N,)`` integer labels for colour.
    :param title: axes title.
    :param xlabel: x-axis label (e.g. ``"PC 1"``).
    :param ylabel: y-axis label.
    :param path: where to save.
    :param ax: draw into this axes instead of a new figure.
    :param max_points: plot at most this many points.
    """
    z2 = z2[:max_points].detach().cpu()
    own = ax is None
    if own:
        fig = new_figure((5.5, 4.8))
        ax = fig.subplots()
    else:
        fig = ax.figure
    if labels is not None:
        labels = labels[:max_points].cpu()
        sc = ax.scatter(z2[:, 0], z2[:, 1], c=labels, cmap="tab10", s=3, alpha=0.7, vmin=-0.5, vmax=9.5)
        if own:
            cb = fig.colorbar(sc, ax=ax, ticks=range(10))
            cb.set_label("digit")
    else:
        ax.scatter(z2[:, 0], z2[:, 1], s=3, alpha=0.5)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return save(fig, path) if own else fig
