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


def latent_bubbles(
    loc: torch.Tensor,
    scale: torch.Tensor,
    labels: torch.Tensor | None = None,
    dims: tuple[int, int] = (0, 1),
    title: str = "posterior bubbles: one ellipse of radius sd(q(z|x)) per input",
    path: str | os.PathLike | None = None,
    max_points: int = 300,
) -> Figure:
    """One ellipse per input, centred at q's mean with q's standard deviations as radii
    (seed 001, Fig. 3), over the unit circle of the prior.

    :param loc: ``(N, z_dim)`` posterior means.
    :param scale: ``(N, z_dim)`` posterior standard deviations.
    :param labels: ``(N,)`` labels for colour.
    :param dims: the two latent dimensions drawn.
    :param title: axes title.
    :param path: where to save.
    :param max_points: draw at most this many bubbles.
    """
    from matplotlib import colormaps
    from matplotlib.patches import Circle, Ellipse

    i, j = dims
    loc, scale = loc[:max_points, [i, j]].detach().cpu(), scale[:max_points, [i, j]].detach().cpu()
    cmap = colormaps["tab10"]
    fig = new_figure((5.8, 5.2))
    ax = fig.subplots()
    for n in range(len(loc)):
        color = cmap(int(labels[n]) % 10) if labels is not None else "C0"
        ax.add_patch(Ellipse((float(loc[n, 0]), float(loc[n, 1])), 2 * float(scale[n, 0]), 2 * float(scale[n, 1]),
                             facecolor=color, edgecolor=color, alpha=0.25, lw=0.6))
    ax.add_patch(Circle((0, 0), 1.0, fill=False, ls="--", color="k", lw=1, label="prior: 1 sd"))
    ax.scatter(loc[:, 0], loc[:, 1], s=2, c="k")
    if labels is not None:
        for c in sorted({int(v) for v in labels[:max_points]}):
            ax.scatter([], [], color=cmap(c % 10), label=str(c))
    half = float(max(loc.abs().max() + scale.max(), 1.2)) * 1.05
    ax.set_xlim(-half, half)
    ax.set_ylim(-half, half)
    ax.set_aspect("equal")
    ax.set_xlabel(f"z[{i}]")
    ax.set_ylabel(f"z[{j}]")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), title="digit" if labels is not None else None)
    return save(fig, path)


def latent_snapshots(
    snapshots,
    labels: torch.Tensor | None = None,
    title: str = "posterior means during training",
    path: str | os.PathLike | None = None,
    ncol: int = 4,
) -> Figure:
    """One scatter panel per recorded epoch (seed 001, Fig. 8).

    :param snapshots: a :class:`pyrovae.inspect.LatentSnapshots` (``epochs``, ``points``,
        ``labels``) after training.
    :param labels: labels for colour (default: the snapshots' own).
    :param title: figure title.
    :param path: where to save.
    :param ncol: panels per row.
    """
    epochs, points = snapshots.epochs, snapshots.points
    if not epochs:
        raise ValueError("no snapshots recorded: pass the LatentSnapshots object to fit(callbacks=[...])")
    labels = labels if labels is not None else getattr(snapshots, "labels", None)
    ncol = min(ncol, len(epochs))
    nrow = -(-len(epochs) // ncol)
    fig = new_figure((3.0 * ncol, 2.8 * nrow + 0.4))
    axes = fig.subplots(nrow, ncol, squeeze=False)
    xlabel, ylabel = getattr(snapshots, "axis_labels", ("dim 1", "dim 2"))
    for k, ax in enumerate(axes.flat):
        if k >= len(epochs):
            ax.set_visible(False)
            continue
        latent_scatter(points[k], labels, title=f"epoch {epochs[k]}", xlabel=xlabel, ylabel=ylabel, ax=ax)
    fig.suptitle(title)
    fig.tight_layout()
    return save(fig, path)
