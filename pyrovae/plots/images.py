"""Figure plumbing and image grids (samples, reconstructions)."""

from __future__ import annotations

import math
import os
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


def image_grid(
    images: torch.Tensor,
    nrow: int | None = None,
    title: str | None = None,
    row_labels: list[str] | None = None,
    path: str | os.PathLike | None = None,
    cell: float = 0.7,
) -> Figure:
    """A grid of images, ``nrow`` per row.

    :param images: ``(N, 1, H, W)``, ``(N, H, W)`` or ``(N, H*W)`` in [0, 1].
    :param nrow: images per row (default ``ceil(sqrt(N))``).
    :param title: figure title.
    :param row_labels: a label at the left of each row.
    :param path: where to save the PNG.
    :param cell: inches per image.
    """
    imgs = _as_images(images)
    n = len(imgs)
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    fig = new_figure((cell * nrow + (1.2 if row_labels else 0), cell * rows + 0.5))
    axes = fig.subplots(rows, nrow, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        for s in ax.spines.values():
            s.set_visible(False)
        if i < n:
            ax.imshow(imgs[i], cmap="gray_r" if imgs[i].dim() == 2 else None, vmin=0, vmax=1)
    if row_labels:
        for r, label in enumerate(row_labels[:rows]):
            axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    if title:
        fig.suptitle(title)
    fig.subplots_adjust(wspace=0.05, hspace=0.05)
    return save(fig, path)


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
    return image_grid(torch.cat(rows), nrow=per_row, title=title, row_labels=labels, path=path)
