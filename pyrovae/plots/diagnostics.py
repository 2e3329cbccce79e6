"""Figures of collapse diagnostics: the activity and KL of each latent dimension."""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence

import torch
from matplotlib.figure import Figure

from .images import new_figure, save


def unit_activity(
    activity: torch.Tensor,
    kl: torch.Tensor | None = None,
    threshold: float = 0.01,
    title: str = "latent dimensions: activity and KL",
    path: str | os.PathLike | None = None,
    layers: Sequence[int] | None = None,
) -> Figure:
    """Bars of each dimension's activity Var_x(E_q[z_d]) (log scale, with the active-unit
    threshold) and, if given, its mean KL.

    :param activity: ``(z_dim,)``.
    :param kl: ``(z_dim,)`` mean KL per dimension, nats.
    :param threshold: the active-unit threshold drawn as a line.
    :param title: figure title.
    :param path: where to save.
    :param layers: the sizes of a hierarchical VAE's layers, bottom first (summing to
        ``z_dim``): each layer's span is marked and labelled with its count of active units.
    """
    a = activity.detach().cpu().clamp_min(1e-8)
    d = torch.arange(len(a))
    if layers is not None and sum(layers) != len(a):
        raise ValueError(f"layers {tuple(layers)} sum to {sum(layers)}, but activity has {len(a)} dimensions")
    panels = 2 if kl is not None else 1
    fig = new_figure((min(16.0, max(4.0, 0.25 * len(a) + 2)), 2.6 * panels + 0.4))
    axes = fig.subplots(panels, 1, squeeze=False)[:, 0]
    colors = ["C0" if v > threshold else "C3" for v in a]
    axes[0].bar(d.numpy(), a.numpy(), color=colors)
    axes[0].axhline(threshold, color="k", ls="--", lw=1, label=f"threshold {threshold:g} (red: collapsed)")
    axes[0].set_yscale("log")
    axes[0].set_ylabel("Var_x E_q[z_d]")
    axes[0].legend(fontsize=7)
    if kl is not None:
        axes[1].bar(d.numpy(), kl.detach().cpu().numpy(), color=colors)
        axes[1].set_ylabel("mean KL (nats)")
    if layers is not None:
        starts = [0, *itertools.accumulate(layers)]
        for layer, (lo, hi) in enumerate(itertools.pairwise(starts), start=1):
            if lo:  # a line between two layers
                for ax in axes:
                    ax.axvline(lo - 0.5, color="0.4", lw=1)
            axes[0].text((lo + hi - 1) / 2, 1.02, f"z{layer}: {int((a[lo:hi] > threshold).sum())}/{hi - lo} active",
                         transform=axes[0].get_xaxis_transform(), ha="center", va="bottom", fontsize=8)
    axes[-1].set_xlabel("latent dimension d" + (" (the layers' units side by side, z1 first)" if layers else ""))
    fig.suptitle(title)
    fig.tight_layout()
    return save(fig, path)
