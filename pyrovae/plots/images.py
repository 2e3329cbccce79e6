"""Figure plumbing and the one image-grid renderer (samples, reconstructions, decodes of walks)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from matplotlib.figure import Figure

from .._util.files import atomic_write


def new_figure(figsize: tuple[float, float]) -> Figure:
    """A figure that belongs to no pyplot state (no backend is chosen at import)."""
    return Figure(figsize=figsize)


def save(fig: Figure, path: str | os.PathLike | None, dpi: int = 110) -> Figure:
    """Save ``fig`` to ``path`` as a PNG (or the suffix's format), atomically, if given."""
    if path is not None:
        path = Path(path)
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=path.suffix[1:] or "png"))
    return fig


def _as_images(x: torch.Tensor) -> torch.Tensor:
    x = x.detach().float().cpu()
    if x.dim() == 4 and x.shape[1] == 1:
        x = x[:, 0]  # (N, H, W)
    elif x.dim() == 4 and x.shape[1] == 3:
        x = x.permute(0, 2, 3, 1)  # (N, H, W, 3)
    elif x.dim() == 2:
        side = math.isqrt(x.shape[1])
        if side * side != x.shape[1]:
            raise ValueError(f"cannot show vectors of length {x.shape[1]} as square images")
        x = x.reshape(-1, side, side)
    return x.clamp(0, 1)


def mosaic(images: torch.Tensor, ncol: int, pad: int = 2) -> torch.Tensor:
    """Tile images ``(N, ...)`` into one picture, ``ncol`` per row, with ``pad`` pixels between.

    :param images: anything :func:`image_grid` takes.
    :param ncol: images per row.
    :param pad: pixels between neighbours (background: white).
    :returns: ``(rows*(H+pad), ncol*(W+pad))`` for grey images (0 = white under ``gray_r``),
        ``(rows*(H+pad), ncol*(W+pad), 3)`` for colour ones (1 = white).
    """
    imgs = _as_images(images)  # (N, H, W) or (N, H, W, 3)
    if imgs.dim() not in (3, 4):
        raise ValueError(f"mosaic needs images (N, H, W) or (N, H, W, 3), got shape {tuple(imgs.shape)}")
    n, h, w = imgs.shape[:3]
    rows = -(-n // ncol)
    colour = imgs.shape[3:]  # () or (3,)
    canvas = torch.full((rows * ncol, h + pad, w + pad, *colour), 1.0 if colour else 0.0)
    canvas[:n, pad // 2:pad // 2 + h, pad // 2:pad // 2 + w] = imgs
    tiled = canvas.reshape(rows, ncol, h + pad, w + pad, *colour).transpose(1, 2)  # (rows, H+pad, ncol, W+pad, ...)
    return tiled.reshape(rows * (h + pad), ncol * (w + pad), *colour)


def labelled_grid(
    images: torch.Tensor,
    ncol: int,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    title: str | None = None,
    xlabel: str | None = None,
    path: str | os.PathLike | None = None,
    cell: float = 0.75,
    pad: int = 2,
) -> Figure:
    """The one image-grid renderer: decodes, samples, reconstructions, interpolation strips,
    traversals and attribute vectors, with a label per row (e.g. "linear", "z[3]") and per
    column (e.g. the value of t or of the latent coordinate). The grid is drawn as one image
    in one axes, so a large grid renders fast.

    :param images: ``(rows * ncol, *x_shape)`` in [0, 1], in row order: ``(N, 1, H, W)``,
        ``(N, H, W)``, ``(N, H*W)`` grey or ``(N, 3, H, W)`` colour.
    :param ncol: images per row.
    :param row_labels: one label per row.
    :param col_labels: one label per column, above the first row.
    :param title: figure title.
    :param xlabel: a caption under the grid (what the columns vary).
    :param path: where to save.
    :param cell: inches per image.
    :param pad: pixels between neighbouring images.
    """
    tiled = mosaic(images, ncol, pad)
    rows = -(-len(images) // ncol)
    fig = new_figure((cell * ncol + (0.9 if row_labels else 0.2), cell * rows + 0.3 + (0.3 if col_labels else 0)))
    ax = fig.subplots()
    ax.imshow(tiled.numpy(), cmap="gray_r", vmin=0, vmax=1, extent=(-0.5, ncol - 0.5, rows - 0.5, -0.5))
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


def image_grid(
    images: torch.Tensor,
    nrow: int | None = None,
    title: str | None = None,
    row_labels: list[str] | None = None,
    path: str | os.PathLike | None = None,
    cell: float = 0.7,
) -> Figure:
    """A grid of images, ``nrow`` per row: :func:`labelled_grid` with a square default.

    :param images: ``(N, 1, H, W)``, ``(N, H, W)``, ``(N, H*W)`` or ``(N, 3, H, W)`` in [0, 1].
    :param nrow: images per row (default ``ceil(sqrt(N))``).
    :param title: figure title.
    :param row_labels: a label at the left of each row.
    :param path: where to save the PNG.
    :param cell: inches per image.
    """
    ncol = nrow or math.ceil(math.sqrt(len(images)))
    return labelled_grid(images, ncol, row_labels=row_labels, title=title, path=path, cell=cell)


def reconstructions(
    originals: torch.Tensor, recons: torch.Tensor, title: str = "inputs (top) and reconstructions (bottom)",
    path: str | os.PathLike | None = None,
) -> Figure:
    """Inputs in the first row and their reconstructions under them, in pairs of rows."""
    n = len(originals)
    per_row = min(n, 10)
    rows = []
    labels = []
    for start in range(0, n, per_row):
        rows += [originals[start:start + per_row], recons[start:start + per_row]]
        labels += ["input", "recon"]
    return labelled_grid(torch.cat(rows), per_row, row_labels=labels, title=title, path=path, cell=0.7)
