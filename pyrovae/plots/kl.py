"""Figures of KL-direction studies: fitted Gaussians over a target (Deep Learning book Fig. 3.6
style) and true posteriors against guides for VAE test digits."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import torch
from matplotlib.figure import Figure

from .images import _as_images, new_figure, save

_COLOURS = ("tab:red", "tab:blue", "tab:green", "tab:orange", "tab:purple", "tab:brown")
_LEVELS_SD = (1.0, 2.0)  # q's contours: the 1- and 2-standard-deviation ellipses


def _q_levels(dens: torch.Tensor) -> list[float]:
    # a Gaussian's density at r standard deviations is peak * exp(-r^2 / 2)
    peak = float(dens.max())
    return sorted(peak * math.exp(-r * r / 2) for r in _LEVELS_SD)


def _target(ax, grid: dict, modes: torch.Tensor | None) -> None:
    ax.contourf(grid["xs"], grid["ys"], grid["p"], levels=12, cmap="Greys")
    if modes is not None:
        ax.scatter(modes[:, 0], modes[:, 1], marker="+", s=60, c="w", linewidths=1)  # white on the dark peaks
    ax.set_aspect("equal")
    ax.set_xlabel("z[0]")
    ax.set_ylabel("z[1]")


def kl_fits(result: Any, path: str | os.PathLike | None = None) -> Figure:
    """Contours of p (grey) with each fitted q (coloured 1- and 2-sd ellipses), one panel
    per direction: forward KL(p‖q), reverse KL(q‖p), and the Rényi α sweep.

    :param result: a :class:`pyrovae.kl_toy.ToyResult` with a density grid.
    :param path: where to save the PNG.
    """
    grid = result.grid
    if not grid:
        raise ValueError("the result has no density grid: run run_toy with grid_size > 0 on a 2-D target")
    fits = list(result.fits.values())
    panels = [
        ("q* = argmin KL(p||q)  (forward, mass-covering)", [f for f in fits if f.method.startswith("forward")]),
        ("q* = argmin KL(q||p)  (reverse, mode-seeking)", [f for f in fits if f.method == "reverse"]),
    ]
    renyi = [f for f in fits if f.method == "renyi"]
    if renyi:
        panels.append(("Rényi bounds, α from reverse (1) to covering", [result.reverse] + renyi))
    fig = new_figure((4.6 * len(panels), 4.9))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (title, group) in zip(axes, panels):
        _target(ax, grid, result.modes)
        handles = []
        for i, f in enumerate(group):
            colour = _COLOURS[i % len(_COLOURS)]
            cs = ax.contour(grid["xs"], grid["ys"], grid["q"][f.name], levels=_q_levels(grid["q"][f.name]),
                            colors=colour, linewidths=(1.0, 1.8))
            handles.append(cs.legend_elements()[0][0])
            ax.plot(*f.q.mean.tolist(), "o", c=colour, ms=4)
        labels = [f"{f.name if f.alpha is None else f'α={f.alpha:g}'}: KL(p||q)={float(f.kl_pq.value):.2f}, "
                  f"KL(q||p)={float(f.kl_qp.value):.2f}" for f in group]
        if group and group[0].method == "reverse" and len(group) > 1:
            labels[0] = f"α→1 (reverse): KL(p||q)={float(group[0].kl_pq.value):.2f}, KL(q||p)={float(group[0].kl_qp.value):.2f}"
        ax.legend(handles, labels, fontsize=6.5, loc="upper left", framealpha=0.85)
        ax.set_title(title, fontsize=9)
    fig.suptitle(f"one Gaussian q fitted to a bimodal p (grey), seed {result.seed}; ellipses at 1 and 2 sd",
                 fontsize=10)
    return save(fig, path)


def posterior_vs_guides(
    images: torch.Tensor,
    grids: Sequence[Sequence[Any]],
    guide_names: Sequence[str],
    path: str | os.PathLike | None = None,
    title: str = "true posterior p(z|x) (grey) against each guide q(z|x) (red, 1 and 2 sd)",
) -> Figure:
    """One row per test digit: the digit, then each trained model's true posterior with its
    guide's ellipses, and both KL directions (by quadrature on the grid) in the corner.

    :param images: ``(R, *x_shape)`` the digits.
    :param grids: one list per guide of R :class:`pyrovae.posterior_grid.PosteriorGrid`
        (as from :func:`pyrovae.kl_compare.posterior_grids`).
    :param guide_names: a column title per guide.
    :param path: where to save the PNG.
    :param title: figure title.
    """
    if len(grids) != len(guide_names):
        raise ValueError(f"got {len(grids)} grid lists but {len(guide_names)} guide names")
    imgs = _as_images(images)
    rows, cols = len(imgs), len(grids) + 1
    if any(len(g) != rows for g in grids):
        raise ValueError(f"every guide needs one grid per image ({rows})")
    fig = new_figure((1.2 + 2.6 * len(grids), 2.4 * rows + 0.6))
    axes = fig.subplots(rows, cols, squeeze=False, gridspec_kw={"width_ratios": [0.45] + [1] * len(grids)})
    for r in range(rows):
        ax = axes[r, 0]
        ax.imshow(imgs[r], cmap="gray_r", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        for c, (column, name) in enumerate(zip(grids, guide_names), start=1):
            g, ax = column[r], axes[r, c]
            q = g.log_q.exp()
            ax.contourf(g.z0, g.z1, g.log_post.exp(), levels=10, cmap="Greys")
            ax.contour(g.z0, g.z1, q, levels=_q_levels(q), colors="tab:red", linewidths=(0.8, 1.4))
            ax.text(0.02, 0.02, f"KL(q||p)={g.kl_q_p:.2f}\nKL(p||q)={g.kl_p_q:.2f}", transform=ax.transAxes,
                    fontsize=6, va="bottom", bbox={"fc": "white", "alpha": 0.7, "lw": 0})
            ax.tick_params(labelsize=6)
            if r == 0:
                ax.set_title(name, fontsize=9)
    height = fig.get_figheight()
    # fixed margins in inches: the title sits close above the column titles at any row count
    fig.subplots_adjust(top=1 - 0.75 / height, bottom=0.25 / height, hspace=0.25, wspace=0.3)
    fig.suptitle(title, fontsize=10, y=1 - 0.12 / height, va="top")
    return save(fig, path)
