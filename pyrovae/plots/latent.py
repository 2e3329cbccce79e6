"""Figures of latent codes: scatters and posterior bubbles, each with a legend of the labels
(the same colour for the same label in every figure) and, given one, the prior's contours."""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from matplotlib.figure import Figure

from .images import new_figure, save

#: at most this many label values get a legend entry each; more are drawn with a colour bar
MAX_LEGEND_LABELS = 20


def label_colours(labels: torch.Tensor, names: Sequence[str] | None = None) -> tuple[list, list, list[str]] | None:
    """One colour per point from its label, the same colour for the same label in every
    figure: ``tab10`` by value for labels 0-9 (digits), else ``tab20`` over the sorted
    distinct values. ``None`` when there are more than :data:`MAX_LEGEND_LABELS` values.

    :param labels: ``(N,)`` labels.
    :param names: the name of each class index (``names[k]`` for label ``k``, e.g. a folder's
        sub-folders); default: the values themselves.
    :returns: ``(colours of the N points, colours of the distinct values, their names)``.
    """
    from matplotlib import colormaps

    values = sorted({v.item() for v in labels.detach().cpu().flatten()})
    if len(values) > MAX_LEGEND_LABELS:
        return None
    digits = all(float(v).is_integer() and 0 <= v < 10 for v in values)
    cmap = colormaps["tab10" if digits else "tab20"]
    index = {v: int(v) if digits else k for k, v in enumerate(values)}
    points = [cmap(index[v.item()]) for v in labels.detach().cpu().flatten()]
    shown = [str(int(v)) if float(v).is_integer() else f"{v:g}" for v in values]
    if names is not None:
        shown = [names[int(v)] if float(v).is_integer() and 0 <= v < len(names) else t for v, t in zip(values, shown)]
    return points, [cmap(index[v]) for v in values], shown


def _label_handles(colours: list, names: list[str], alpha: float = 0.8) -> list:
    from matplotlib.patches import Patch

    return [Patch(facecolor=c, edgecolor=c, alpha=alpha, label=n) for c, n in zip(colours, names)]


def _prior_contours(ax, prior) -> list:
    """Draw a :class:`pyrovae.inspect.DensityGrid`'s HDR contours; returns legend handles."""
    from matplotlib.lines import Line2D

    order = sorted(range(len(prior.masses)), key=lambda k: float(prior.log_levels[k]))  # increasing levels
    levels = [float(prior.log_levels[k]) for k in order]
    styles = ["--", "-", ":", "-."]
    what = {"exact": "prior", "marginal": "prior (2-D marginal)", "slice": "prior (slice)"}.get(
        getattr(prior, "kind", "exact"), "prior")
    handles = []
    for rank, k in enumerate(order):  # one contour call per level: its own line style
        style = styles[rank % len(styles)]
        ax.contour(prior.z0, prior.z1, prior.log_density, levels=[levels[rank]], colors="k",
                   linestyles=[style], linewidths=1.0)
        handles.append(Line2D([], [], color="k", ls=style, lw=1.0,
                              label=f"{what}: {100 * prior.masses[k]:.1f}% of its mass"))
    return handles[::-1]  # smallest region first


def latent_scatter(
    z2: torch.Tensor,
    labels: torch.Tensor | None = None,
    title: str = "latent means",
    xlabel: str = "z[0]",
    ylabel: str = "z[1]",
    path: str | os.PathLike | None = None,
    ax=None,
    max_points: int = 10000,
    label_name: str = "digit",
    legend: bool = True,
    prior=None,
    label_names: Sequence[str] | None = None,
) -> Figure:
    """Scatter of 2-D latent codes coloured by label (digit), with a legend of the labels.

    :param z2: ``(N, 2)`` codes (already projected).
    :param labels: ``(N,)`` labels for colour.
    :param title: axes title.
    :param xlabel: x-axis label (e.g. ``"PC 1"``).
    :param ylabel: y-axis label.
    :param path: where to save.
    :param ax: draw into this axes instead of a new figure.
    :param max_points: plot at most this many points.
    :param label_name: what the labels are, the legend's title (``"digit"``, ``"class"``).
    :param label_names: the name of each class index for the legend (default: the indices).
    :param legend: draw the legend (off for panels that share one).
    :param prior: a :class:`pyrovae.inspect.DensityGrid` of the prior over the same two
        coordinates (:func:`pyrovae.inspect.prior_density`), drawn as contours of its
        highest-density regions; only meaningful for codes that are not projected.
    """
    z2 = z2[:max_points].detach().cpu()
    own = ax is None
    if own:
        fig = new_figure((6.2, 4.8))
        ax = fig.subplots()
    else:
        fig = ax.figure
    handles = _prior_contours(ax, prior) if prior is not None else []
    if labels is not None:
        labels = labels[:max_points].cpu()
        coloured = label_colours(labels, label_names)
        if coloured is None:  # too many values for a legend: a colour bar
            sc = ax.scatter(z2[:, 0], z2[:, 1], c=labels, cmap="viridis", s=3, alpha=0.7)
            if legend:
                fig.colorbar(sc, ax=ax).set_label(label_name)
        else:
            points, colours, names = coloured
            ax.scatter(z2[:, 0], z2[:, 1], c=points, s=3, alpha=0.7)
            handles += _label_handles(colours, names)
    else:
        ax.scatter(z2[:, 0], z2[:, 1], s=3, alpha=0.5)
    if legend and handles:
        ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1),
                  title=label_name if labels is not None else None, title_fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if own:
        fig.tight_layout()
    return save(fig, path) if own else fig


def latent_bubbles(
    loc: torch.Tensor,
    scale: torch.Tensor,
    labels: torch.Tensor | None = None,
    dims: tuple[int, int] = (0, 1),
    title: str = "posterior bubbles: one ellipse of radius sd(q(z|x)) per input",
    path: str | os.PathLike | None = None,
    max_points: int = 300,
    prior=None,
    label_name: str = "digit",
    label_names: Sequence[str] | None = None,
) -> Figure:
    """One ellipse per input, centred at q's mean with q's standard deviations as radii
    (seed 001, Fig. 3), over the contours of the model's own prior.

    :param loc: ``(N, z_dim)`` posterior means.
    :param scale: ``(N, z_dim)`` posterior standard deviations.
    :param labels: ``(N,)`` labels for colour.
    :param dims: the two latent dimensions drawn.
    :param title: axes title.
    :param path: where to save.
    :param max_points: draw at most this many bubbles.
    :param prior: a :class:`pyrovae.inspect.DensityGrid` over ``dims``
        (:func:`pyrovae.inspect.prior_density`), drawn as contours of its highest-density
        regions (the 1- and 2-sigma masses by default); ``None`` draws no prior.
    :param label_name: what the labels are, the legend's title.
    :param label_names: the name of each class index for the legend (default: the indices).
    :raises ValueError: when ``prior`` is over other dimensions than ``dims``.
    """
    from matplotlib.patches import Ellipse

    i, j = dims
    if prior is not None and tuple(getattr(prior, "dims", dims)) != (i, j):
        raise ValueError(f"the prior grid is over dims {tuple(prior.dims)} but the bubbles are over {(i, j)}: "
                         f"compute it with inspect.prior_density(vae, dims={(i, j)})")
    loc, scale = loc[:max_points, [i, j]].detach().cpu(), scale[:max_points, [i, j]].detach().cpu()
    coloured = label_colours(labels[:max_points], label_names) if labels is not None else None
    fig = new_figure((6.6, 5.2))
    ax = fig.subplots()
    for n in range(len(loc)):
        color = coloured[0][n] if coloured is not None else "C0"
        ax.add_patch(Ellipse((float(loc[n, 0]), float(loc[n, 1])), 2 * float(scale[n, 0]), 2 * float(scale[n, 1]),
                             facecolor=color, edgecolor=color, alpha=0.25, lw=0.6))
    handles = _prior_contours(ax, prior) if prior is not None else []
    # each centre in its label's colour (dark edge): tight bubbles in a crowd stay told apart
    ax.scatter(loc[:, 0], loc[:, 1], s=5, c=coloured[0] if coloured is not None else "k", edgecolors="k",
               linewidths=0.2, zorder=3)
    if coloured is not None:
        handles += _label_handles(coloured[1], coloured[2], alpha=0.5)
    # the view: every bubble, and the prior's grid (which prior_density lays over its mass)
    lo = (loc - scale).min(0).values
    hi = (loc + scale).max(0).values
    if prior is not None:
        lo = torch.minimum(lo, torch.tensor([float(prior.z0[0]), float(prior.z1[0])]))
        hi = torch.maximum(hi, torch.tensor([float(prior.z0[-1]), float(prior.z1[-1])]))
    pad = 0.03 * (hi - lo)
    ax.set_xlim(float(lo[0] - pad[0]), float(hi[0] + pad[0]))
    ax.set_ylim(float(lo[1] - pad[1]), float(hi[1] + pad[1]))
    ax.set_aspect("equal")
    ax.set_xlabel(f"z[{i}]")
    ax.set_ylabel(f"z[{j}]")
    ax.set_title(title, fontsize=10)
    if handles:
        ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1),
                  title=label_name if labels is not None else None, title_fontsize=8)
    fig.tight_layout()
    return save(fig, path)


def latent_snapshots(
    snapshots,
    labels: torch.Tensor | None = None,
    title: str = "posterior means during training",
    path: str | os.PathLike | None = None,
    ncol: int = 4,
    label_name: str = "digit",
) -> Figure:
    """One scatter panel per recorded epoch (seed 001, Fig. 8), one legend of the labels.

    :param snapshots: a :class:`pyrovae.inspect.LatentSnapshots` (``epochs``, ``points``,
        ``labels``) after training.
    :param labels: labels for colour (default: the snapshots' own).
    :param title: figure title.
    :param path: where to save.
    :param ncol: panels per row.
    :param label_name: what the labels are, the legend's title.
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
        latent_scatter(points[k], labels, title=f"epoch {epochs[k]}", xlabel=xlabel, ylabel=ylabel, ax=ax,
                       legend=False)
    fig.suptitle(title)
    fig.tight_layout()
    coloured = label_colours(labels[: len(points[0])]) if labels is not None else None
    if coloured is not None:  # one legend for all panels, to the right of them
        fig.subplots_adjust(right=0.9)
        fig.legend(handles=_label_handles(coloured[1], coloured[2]), loc="center right", fontsize=7,
                   title=label_name, title_fontsize=8)
    return save(fig, path)
