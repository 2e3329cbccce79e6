"""Figures of walks through the latent space: labelled strips and grids of decodes, and the
2-D manifold with its latent coordinates on the axes."""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from matplotlib.figure import Figure

from .images import _as_images, new_figure, save


def mosaic(images: torch.Tensor, ncol: int, pad: int = 2) -> torch.Tensor:
    """Tile images ``(N, ...)`` into one ``(rows*(H+pad), ncol*(W+pad))`` picture (background 0)."""
    imgs = _as_images(images)  # (N, H, W)
    if imgs.dim() != 3:
        raise ValueError(f"mosaic needs grey images (N, H, W), got shape {tuple(imgs.shape)}")
    n, h, w = imgs.shape
    rows = -(-n // ncol)
    canvas = torch.zeros(rows * ncol, h + pad, w + pad)
    canvas[:n, pad // 2:pad // 2 + h, pad // 2:pad // 2 + w] = imgs
    return canvas.reshape(rows, ncol, h + pad, w + pad).permute(0, 2, 1, 3).reshape(rows * (h + pad), ncol * (w + pad))


def labelled_grid(
    images: torch.Tensor,
    ncol: int,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    title: str | None = None,
    xlabel: str | None = None,
    path: str | os.PathLike | None = None,
    cell: float = 0.75,
) -> Figure:
    """A grid of decodes with a label per row (e.g. "linear", "z[3]") and per column (e.g.
    the value of t or of the latent coordinate); interpolation strips, traversals, attribute
    vectors, samples and reconstructions all use it. The grid is drawn as one image in one
    axes, so a large grid renders fast.

    :param images: ``(rows * ncol, *x_shape)`` grey images in [0, 1], in row order.
    :param ncol: images per row.
    :param row_labels: one label per row.
    :param col_labels: one label per column, above the first row.
    :param title: figure title.
    :param xlabel: a caption under the grid (what the columns vary).
    :param path: where to save.
    :param cell: inches per image.
    """
    tiled = mosaic(images, ncol)
    rows = -(-len(images) // ncol)
    fig = new_figure((cell * ncol + (0.9 if row_labels else 0.2), cell * rows + 0.3 + (0.3 if col_labels else 0)))
    ax = fig.subplots()
    ax.imshow(tiled, cmap="gray_r", vmin=0, vmax=1, extent=(-0.5, ncol - 0.5, rows - 0.5, -0.5))
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.tick_params(length=0, labelsize=8)
    ax.set_yticks(range(rows) if row_labels else [], list(row_labels)[:rows] if row_labels else [])
    ax.xaxis.set_ticks_position("top")
    ax.set_xticks(range(ncol) if col_labels else [], list(col_labels)[:ncol] if col_labels else [])
    if xlabel:
        ax.set_xlabel(xlabel, fontsize=9)
        ax.xaxis.set_label_position("bottom")
    if title:
        ax.set_title(title, fontsize=10, pad=18 if col_labels else 6)
    return save(fig, path)


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
    imgs = _as_images(images)  # (n*n, H, W)
    n = len(values)
    h, w = imgs.shape[-2:]
    mosaic = imgs.reshape(n, n, h, w).permute(0, 2, 1, 3).reshape(n * h, n * w)
    v = values.detach().cpu()
    step = float(v[1] - v[0]) if n > 1 else 1.0
    fig = new_figure((7.0, 6.6))
    ax = fig.subplots()
    ax.imshow(mosaic, cmap="gray_r", vmin=0, vmax=1,
              extent=(float(v[0]) - step / 2, float(v[-1]) + step / 2, float(v[0]) - step / 2, float(v[-1]) + step / 2))
    ax.set_xlabel(f"z[{dims[0]}] (standard-normal quantiles)")
    ax.set_ylabel(f"z[{dims[1]}]")
    ax.set_title(title)
    return save(fig, path)
