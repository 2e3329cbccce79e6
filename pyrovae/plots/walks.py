"""Figures of walks through the latent space: the 2-D manifold with its latent coordinates on
the axes (its span, from the model's own prior or codes, is computed by
:func:`pyrovae.inspect.manifold_grid`). Strips and grids of decodes (interpolations,
traversals, attribute vectors) are :func:`pyrovae.plots.labelled_grid`."""

from __future__ import annotations

import os

from matplotlib.figure import Figure

from .images import mosaic, new_figure, save


def manifold(
    grid,
    title: str | None = None,
    path: str | os.PathLike | None = None,
    max_ticks: int = 8,
) -> Figure:
    """The learned manifold: decodes tiled on their latent coordinates (seed 003, Fig. 4).

    :param grid: a :class:`pyrovae.inspect.ManifoldGrid` (``images`` with the top row at the
        largest second coordinate, ``z0``, ``z1``, ``dims``, ``source``, ``spacing``, ``low``,
        ``high``).
    :param title: axes title (default: says where the grid's span came from).
    :param path: where to save.
    :param max_ticks: at most this many labelled ticks per axis on a quantile-spaced grid.
    """
    n = len(grid.z0)
    tiled = mosaic(grid.images, n, pad=0)  # (n*H, n*W): the cells touch, as a continuous manifold
    z0, z1 = grid.z0.detach().cpu(), grid.z1.detach().cpu()
    dims = tuple(getattr(grid, "dims", (0, 1)))
    spacing = getattr(grid, "spacing", "linear")
    fig = new_figure((7.0, 6.6))
    ax = fig.subplots()
    if spacing == "linear":  # even steps: the axes are the latent coordinates themselves
        s0, s1 = float(z0[1] - z0[0]) / 2, float(z1[1] - z1[0]) / 2
        ax.imshow(tiled.numpy(), cmap="gray_r", vmin=0, vmax=1, aspect="auto",
                  extent=(float(z0[0]) - s0, float(z0[-1]) + s0, float(z1[0]) - s1, float(z1[-1]) + s1))
    else:  # uneven steps: one cell per value, ticks labelled with the values
        ax.imshow(tiled.numpy(), cmap="gray_r", vmin=0, vmax=1, extent=(-0.5, n - 0.5, -0.5, n - 0.5))
        every = -(-n // max_ticks)
        ticks = list(range(0, n, every))
        ax.set_xticks(ticks, [f"{float(z0[k]):.2g}" for k in ticks])
        ax.set_yticks(ticks, [f"{float(z1[k]):.2g}" for k in ticks])
    source = {"prior": "prior draws", "codes": "the codes", "both": "prior draws and codes"}.get(
        getattr(grid, "source", "prior"), "the latent points")
    low, high = getattr(grid, "low", None), getattr(grid, "high", None)
    span = f"{100 * low:g}%-{100 * high:g}% quantiles" if low is not None else "quantiles"
    ax.set_xlabel(f"z[{dims[0]}]" + (" (quantile-spaced)" if spacing != "linear" else ""))
    ax.set_ylabel(f"z[{dims[1]}]")
    ax.set_title(title or f"decodes over a {n}×{n} grid spanning the {span} of {source}", fontsize=10)
    return save(fig, path)
