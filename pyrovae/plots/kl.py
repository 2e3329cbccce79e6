"""Figures of KL-direction studies: fitted Gaussians over a target (Deep Learning book Fig. 3.6
style). True posteriors against the guides of the VAE study are
:func:`pyrovae.plots.posterior_vs_guides`."""

from __future__ import annotations

import math
import os
from typing import Any

import torch
from matplotlib.figure import Figure

from .images import new_figure, save

_COLOURS = ("tab:red", "tab:blue", "tab:green", "tab:orange", "tab:purple", "tab:brown")


def _q_levels(dens: torch.Tensor) -> list[float]:
    # a fitted Gaussian q's density at r standard deviations is peak * exp(-r^2 / 2): its 1- and 2-sd ellipses
    peak = float(dens.max())
    return sorted(peak * math.exp(-r * r / 2) for r in (1.0, 2.0))


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

    :param result: a :class:`pyrovae.kl.ToyResult` with a density grid.
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
        panels.append(("Rényi bounds, α from reverse (1) to covering", [result.reverse, *renyi]))
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
            labels[0] = (
                f"α→1 (reverse): KL(p||q)={float(group[0].kl_pq.value):.2f}, KL(q||p)={float(group[0].kl_qp.value):.2f}"
            )
        ax.legend(handles, labels, fontsize=6.5, loc="upper left", framealpha=0.85)
        ax.set_title(title, fontsize=9)
    fig.suptitle(f"one Gaussian q fitted to a bimodal p (grey), seed {result.seed}; ellipses at 1 and 2 sd",
                 fontsize=10)
    return save(fig, path)
