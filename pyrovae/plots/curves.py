"""Learning curves: a bound on the test NLL per epoch, with measured and published marks."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from matplotlib.figure import Figure

from .images import new_figure, save


def _annotate_apart(ax, stars: list[tuple[float, float]], width: float = 30.0, height: float = 10.0) -> None:
    """Write each star's value beside it; where that box of ``width × height`` points would
    overlap a label already written (or leave the axes), try offsets further below and above
    the star in turn, with a leader line to it."""
    ax.get_xlim(), ax.get_ylim()  # settle the automatic limits before mapping data to points
    to_points = 72.0 / ax.figure.dpi
    bottom, top = ax.bbox.y0 * to_points, ax.bbox.y1 * to_points
    placed: list[tuple[float, float]] = []  # lower-left corners of the labels written, in points
    offsets = [-12.0] + [o for k in range(1, 12) for o in (-12.0 - k * height, -12.0 + k * height)]
    for e, v in sorted(stars):
        x, y = (c * to_points for c in ax.transData.transform((e, v)))
        free = [dy for dy in offsets if bottom <= y + dy and y + dy + height <= top
                and not any(abs(x + 6 - px) < width and abs(y + dy - py) < height for px, py in placed)]
        dy = free[0] if free else offsets[0]
        placed.append((x + 6, y + dy))
        ax.annotate(f"{v:.2f}", (e, v), textcoords="offset points", xytext=(6, dy), fontsize=8,
                    arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "0.4"} if dy != offsets[0] else None)


def learning_curves(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    final: Mapping[str, tuple[float, float]] | None = None,
    references: Mapping[str, float] | None = None,
    ylabel: str = "test -ELBO (nats, lower is better)",
    title: str = "binarised MNIST",
    ylim: tuple[float, float] | None = None,
    path: str | os.PathLike | None = None,
) -> Figure:
    """One line per run of ``y`` against epoch, plus a star per run for a final measurement
    (e.g. the K = 5000 importance-sampled NLL, which lies below the -ELBO curve) and dashed
    horizontal lines (in the legend) for published numbers.

    :param curves: ``name -> (epochs, values)``, e.g. the negated ``History.test_elbo``.
    :param final: ``name -> (epoch, value)``, drawn as a star in the run's colour.
    :param references: ``label -> value`` horizontal lines.
    :param ylabel: y-axis label.
    :param title: figure title.
    :param ylim: y range; default from the last 90% of every curve and all marks, so the
        first epochs' large losses do not flatten the rest.
    :param path: where to save.
    """
    if not curves:
        raise ValueError("learning_curves needs at least one curve")
    final, references = dict(final or {}), dict(references or {})
    fig = new_figure((7.5, 4.5))
    ax = fig.add_subplot(1, 1, 1)
    shown: list[float] = []
    stars = []  # (epoch, value) of the final marks, annotated once the axes' limits are set
    for name, (epochs, values) in curves.items():
        if len(epochs) != len(values):
            raise ValueError(f"curve {name!r}: {len(epochs)} epochs but {len(values)} values")
        (line,) = ax.plot(epochs, values, lw=1.4, label=name)
        shown.extend(values[len(values) // 10:])
        if name in final:
            e, v = final[name]
            ax.plot([e], [v], marker="*", ms=13, color=line.get_color(), mec="black", mew=0.6, ls="none")
            stars.append((e, v))
            shown.append(v)
    styles = ["--", ":", "-.", (0, (5, 1, 1, 1, 1, 1))]
    for i, (label, value) in enumerate(references.items()):
        ax.axhline(value, color="0.35", ls=styles[i % len(styles)], lw=1.0, label=label)
        shown.append(value)
    if ylim is None and shown:
        lo, hi = min(shown), max(shown)
        ylim = (lo - 0.05 * (hi - lo) - 0.5, hi + 0.05 * (hi - lo) + 0.5)
    if ylim is not None:
        ax.set_ylim(*ylim)
    _annotate_apart(ax, stars)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title + ("  (stars: NLL by importance sampling)" if final else ""), fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    return save(fig, path)
