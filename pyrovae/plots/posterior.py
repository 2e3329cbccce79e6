"""The true posterior of a 2-D latent against one or more guides: contour panels."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from matplotlib.figure import Figure

from .images import _as_images, new_figure, save

_GREYS = ("0.86", "0.7", "0.52")  # p(z|x)'s 3-, 2- and 1-sigma regions


def _levels(log_levels: torch.Tensor, count: int) -> list[float]:
    """The first ``count`` log levels (the smallest masses), increasing and distinct."""
    return sorted({float(v) for v in log_levels[:count]})


def _panel(ax, g: Any, legend: bool) -> None:
    """One grid: p(z|x)'s 1-, 2- and 3-sigma regions filled, q(z|x)'s 1- and 2-sigma region
    contours (levels from the grid, :class:`pyrovae.inspect.PosteriorGrid`), both means, both KLs."""
    top = float(g.log_post.max())
    fill = [v for v in _levels(g.post_levels, 3) if v < top] + [top]  # 3 sigma .. 1 sigma, then the peak
    if len(fill) > 1:  # light to dark towards the peak
        ax.contourf(g.z0, g.z1, g.log_post, levels=fill, colors=_GREYS[-(len(fill) - 1):])
    q_levels = _levels(g.q_levels, 2)  # the 2-sigma level, then the 1-sigma level
    ax.contour(g.z0, g.z1, g.log_q, levels=q_levels, colors="tab:red", linewidths=[0.8, 1.4][-len(q_levels):],
               linestyles="solid")  # log levels are negative: not matplotlib's dashes for negative levels
    ax.plot(float(g.mean[0]), float(g.mean[1]), "+", c="tab:blue", ms=8, label="E_p[z|x]")
    ax.plot(float(g.q_loc[0]), float(g.q_loc[1]), "x", c="tab:red", ms=6, label="E_q[z]")
    ax.text(0.02, 0.02, f"KL(q||p)={g.kl_q_p:.2f}\nKL(p||q)={g.kl_p_q:.2f}", transform=ax.transAxes,
            fontsize=6, va="bottom", bbox={"fc": "white", "alpha": 0.7, "lw": 0})
    ax.tick_params(labelsize=6)
    ax.set_xlabel("z[0]", fontsize=7, labelpad=1)
    ax.set_ylabel("z[1]", fontsize=7, labelpad=1)
    if legend:
        ax.legend(fontsize=6, loc="upper right", framealpha=0.7)


def posterior_vs_guides(
    images: torch.Tensor | None,
    grids: Sequence[Sequence[Any]],
    guide_names: Sequence[str],
    path: str | os.PathLike | None = None,
    title: str = "true posterior p(z|x) (grey: 1, 2, 3σ regions) against each guide q(z|x) (red: 1, 2σ regions)",
    per_row: int = 1,
) -> Figure:
    """The one posterior-against-guide figure: for each data point, the input, then each
    guide's panel: the grid-normalised true posterior (its 1-, 2- and 3-sigma highest-density
    regions filled, holding 39.3%, 86.5% and 98.9% of its mass), the guide's 1- and 2-sigma
    region contours, both means, and both KL directions (by quadrature on the grid) in the
    corner. Every level comes from the grid (``post_levels``, ``q_levels``).

    :param images: ``(R, *x_shape)`` the inputs, or ``None`` for no image column.
    :param grids: one list per guide of R :class:`pyrovae.inspect.PosteriorGrid` (as from
        :func:`pyrovae.kl.guides.posterior_grids`).
    :param guide_names: a title per guide column (``""`` for none).
    :param path: where to save the PNG.
    :param title: figure title.
    :param per_row: data points side by side in one row of the figure.
    """
    if len(grids) != len(guide_names):
        raise ValueError(f"got {len(grids)} grid lists but {len(guide_names)} guide names")
    count = len(grids[0]) if grids else 0
    if not count or any(len(g) != count for g in grids):
        raise ValueError(f"every guide needs one grid per data point, got {[len(g) for g in grids]}")
    imgs = _as_images(images) if images is not None else None
    if imgs is not None and len(imgs) != count:
        raise ValueError(f"got {len(imgs)} images for {count} grids")
    per_row = max(1, min(per_row, count))
    lead = [0.45] if imgs is not None else []
    block = len(lead) + len(grids)  # columns per data point
    rows = -(-count // per_row)
    fig = new_figure((per_row * ((1.2 if lead else 0.2) + 2.6 * len(grids)), 2.4 * rows + 0.6))
    axes = fig.subplots(rows, per_row * block, squeeze=False,
                        gridspec_kw={"width_ratios": (lead + [1] * len(grids)) * per_row})
    for ax in axes.flat:
        ax.set_visible(False)
    for r in range(count):
        row, slot = divmod(r, per_row)
        cells = list(axes[row, slot * block:(slot + 1) * block])
        for ax in cells:
            ax.set_visible(True)
        if imgs is not None:
            ax = cells.pop(0)
            ax.imshow(imgs[r], cmap="gray_r" if imgs[r].dim() == 2 else None, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        for c, (ax, column, name) in enumerate(zip(cells, grids, guide_names)):
            _panel(ax, column[r], legend=r == 0 and c == 0)
            if row == 0 and name:
                ax.set_title(name, fontsize=9)
    height = fig.get_figheight()
    # fixed margins in inches: the title sits close above the column titles at any row count
    fig.subplots_adjust(top=1 - 0.75 / height, bottom=0.45 / height, hspace=0.4, wspace=0.6)
    fig.suptitle(title, fontsize=10, y=1 - 0.12 / height, va="top")
    return save(fig, path)


def posterior_contours(
    grids: Sequence,
    inputs: torch.Tensor | None = None,
    title: str = "true posterior p(z|x) (grey: 1, 2, 3σ regions) vs guide q(z|x) (red: 1, 2σ regions)",
    path: str | os.PathLike | None = None,
    ncol: int = 3,
) -> Figure:
    """One guide's panels, ``ncol`` inputs per row: :func:`posterior_vs_guides` with one guide.

    :param grids: :class:`pyrovae.inspect.PosteriorGrid` objects, one per input.
    :param inputs: the inputs ``(len(grids), *x_shape)``, drawn beside their panels.
    :param title: figure title.
    :param path: where to save.
    :param ncol: inputs per row.
    """
    return posterior_vs_guides(inputs, [grids], [""], path=path, title=title, per_row=ncol)
