"""The true posterior of a 2-D latent against the guide: contour panels."""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from matplotlib.figure import Figure

from .images import _as_images, new_figure, save


def posterior_contours(
    grids: Sequence,
    inputs: torch.Tensor | None = None,
    title: str = "true posterior p(z|x) (filled) vs guide q(z|x) (red lines)",
    path: str | os.PathLike | None = None,
    ncol: int = 3,
) -> Figure:
    """One panel per input: filled contours of the grid-normalised p(z|x), q(z|x)'s contours
    on top, both KL directions in the panel title, and the input as an inset.

    :param grids: :class:`pyrovae.inspect.PosteriorGrid` objects.
    :param inputs: the inputs ``(len(grids), *x_shape)`` for the insets.
    :param title: figure title.
    :param path: where to save.
    :param ncol: panels per row.
    """
    ncol = min(ncol, len(grids))
    nrow = -(-len(grids) // ncol)
    fig = new_figure((3.6 * ncol, 3.5 * nrow + 0.5))
    axes = fig.subplots(nrow, ncol, squeeze=False)
    imgs = _as_images(inputs) if inputs is not None else None
    for k, ax in enumerate(axes.flat):
        if k >= len(grids):
            ax.set_visible(False)
            continue
        g = grids[k]
        p, q = g.log_post.exp(), g.log_q.exp()
        ax.contourf(g.z0, g.z1, p, levels=12, cmap="Blues")
        ax.contour(g.z0, g.z1, q, levels=6, colors="red", linewidths=0.9)
        ax.plot(float(g.mean[0]), float(g.mean[1]), "b+", ms=8, label="E_p[z|x]")
        ax.plot(float(g.q_loc[0]), float(g.q_loc[1]), "rx", ms=6, label="E_q[z]")
        ax.set_title(f"KL(q||p) = {g.kl_q_p:.3f}, KL(p||q) = {g.kl_p_q:.3f}", fontsize=8)
        ax.set_xlabel("z[0]")
        ax.set_ylabel("z[1]")
        if imgs is not None and imgs[k].dim() == 2:
            inset = ax.inset_axes([0.0, 0.75, 0.25, 0.25])
            inset.imshow(imgs[k], cmap="gray_r", vmin=0, vmax=1)
            inset.set_xticks([])
            inset.set_yticks([])
        if k == 0:
            ax.legend(fontsize=6, loc="lower right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save(fig, path)
