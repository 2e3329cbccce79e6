"""Figures of walks through the latent space: the 2-D manifold with its latent coordinates on
the axes. Strips and grids of decodes (interpolations, traversals, attribute vectors) are
:func:`pyrovae.plots.labelled_grid`."""

from __future__ import annotations

import os

import torch
from matplotlib.figure import Figure

from .images import mosaic, new_figure, save


def manifold(
    images: torch.Tensor,
    values: torch.Tensor,
    dims: tuple[int, int] = (0, 1),
    title: str = "decodes over prior quantiles",
    path: str | os.PathLike | None = None,
) -> Figure:
    """The learned manifold: decodes tiled on their latent coordinates (seed 003, Fig. 4).

    :param images: ``(n*n, *x_shape)`` from :func:`pyrovae.inspect.manifold_grid` (top row =
        largest second coordinate).
    :param values: ``(n,)`` the grid's coordinate values.
    :param dims: the latent dimensions on the axes.
    :param title: axes title.
    :param path: where to save.
    """
    n = len(values)
    tiled = mosaic(images, n, pad=0)  # (n*H, n*W): the cells touch, as a continuous manifold
    v = values.detach().cpu()
    step = float(v[1] - v[0]) if n > 1 else 1.0
    fig = new_figure((7.0, 6.6))
    ax = fig.subplots()
    ax.imshow(tiled, cmap="gray_r", vmin=0, vmax=1,
              extent=(float(v[0]) - step / 2, float(v[-1]) + step / 2, float(v[0]) - step / 2, float(v[-1]) + step / 2))
    ax.set_xlabel(f"z[{dims[0]}] (standard-normal quantiles)")
    ax.set_ylabel(f"z[{dims[1]}]")
    ax.set_title(title)
    return save(fig, path)
