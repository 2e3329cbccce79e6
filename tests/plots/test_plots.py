"""Every inspection figure renders from a small trained model (PNG written, not trivial).

Set PYROVAE_FIGURES=/some/dir to keep the PNGs for looking at them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from pyrovae import inspect, plots
from pyrovae.cli.report import TWO_D_ONLY, inspection_figures
from tests.small_models import trained_vae

EXPECTED = {"samples", "posterior_decodes", "reconstructions", "latent", "bubbles", "interpolation", "traversal",
            "attribute_thickness", "class_vector", "manifold", "true_posterior", "unit_activity", "anomalies",
            "denoise"}


def _out(tmp_path: Path, name: str) -> Path:
    keep = os.environ.get("PYROVAE_FIGURES")
    return Path(keep) / name if keep else tmp_path / name


def _check_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    assert len(data) > 8000, f"{path} is only {len(data)} bytes"


def test_every_inspection_figure_renders_for_a_2d_latent(tmp_path):
    vae, x, y = trained_vae()
    paths, notes = inspection_figures(vae, x, y, _out(tmp_path, "z2"))
    assert set(paths) == EXPECTED
    for p in paths.values():
        _check_png(p)
    assert not any(n.startswith("manifold") for n in notes)


def test_two_d_only_figures_are_skipped_with_a_note_for_larger_latents(tmp_path, mnist_small):
    from pyrovae.models import build_vae

    vae = build_vae(z_dim=4, hidden=(32,)).eval()  # untrained is enough for layout
    x_test, y_test = (mnist_small[2][:100] > 0.5).float(), mnist_small[3][:100]
    paths, notes = inspection_figures(vae, x_test, y_test, _out(tmp_path, "z4"))
    assert set(paths) == EXPECTED - set(TWO_D_ONLY)
    assert any("need a 2-D latent" in n and "z_dim=4" in n for n in notes)
    for p in paths.values():
        _check_png(p)


def test_snapshot_panels_render(tmp_path):
    snaps = inspect.LatentSnapshots(torch.zeros(1), None)
    snaps.epochs = [0, 1, 2]
    snaps.points = [torch.randn(100, 2) * (e + 1) for e in snaps.epochs]
    path = _out(tmp_path, "snapshots.png")
    plots.latent_snapshots(snaps, torch.arange(100) % 10, path=path)
    _check_png(path)


def test_learning_curves_render_and_check_lengths(tmp_path):
    import pytest

    curves = {"a": ([1, 2, 3], [120.0, 100.0, 95.0]), "b": ([1, 2], [130.0, 110.0])}
    fig = plots.learning_curves(curves, final={"a": (3, 90.5)}, references={"paper: 86.76": 86.76},
                                path=_out(tmp_path, "curves.png"))
    _check_png(_out(tmp_path, "curves.png"))
    ax = fig.axes[0]
    lo, hi = ax.get_ylim()
    assert lo < 86.76 and hi > 110.0  # every mark and the later epochs are in view
    labels = ax.get_legend_handles_labels()[1]
    assert labels == ["a", "b", "paper: 86.76"]
    with pytest.raises(ValueError, match="3 epochs but 2 values"):
        plots.learning_curves({"bad": ([1, 2, 3], [1.0, 2.0])})
    with pytest.raises(ValueError, match="at least one curve"):
        plots.learning_curves({})


def _gaussian_grid(shift: float):
    # a PosteriorGrid by hand: p = N(0, I), q = N(shift, 0.5^2 I), on a 41 x 41 grid
    from pyrovae.inspect import PosteriorGrid

    z = torch.linspace(-3, 3, 41)
    zz = torch.stack(torch.meshgrid(z, z, indexing="ij")[::-1], -1)  # (41, 41, 2) as (z0, z1)
    log_p = torch.distributions.Normal(0.0, 1.0).log_prob(zz).sum(-1)
    log_q = torch.distributions.Normal(shift, 0.5).log_prob(zz).sum(-1)
    return PosteriorGrid(z, z, log_p, log_p, log_q, 0.0, 0.5, 0.7, torch.zeros(2), torch.eye(2),
                         torch.full((2,), shift), torch.full((2,), 0.5))


def test_posterior_contours_sit_at_each_densitys_own_mass(tmp_path):
    from pyrovae.inspect import PosteriorGrid

    z = torch.linspace(-4, 4, 161)
    zz = torch.stack(torch.meshgrid(z, z, indexing="ij")[::-1], -1)  # (161, 161, 2) as (z0, z1)
    # p = N(0, I); q = N((1, -0.5), 0.2^2 I), so narrow that its density on most of the grid is below
    # exp(-100): fixed or automatic levels would trace underflow, not q's mass
    log_p = torch.distributions.Normal(0.0, 1.0).log_prob(zz).sum(-1)
    q_loc = torch.tensor([1.0, -0.5])
    log_q = torch.distributions.Normal(q_loc, 0.2).log_prob(zz).sum(-1)
    g = PosteriorGrid(z, z, log_p, log_p, log_q, 0.0, 0.5, 0.7, torch.zeros(2), torch.eye(2), q_loc,
                      torch.full((2,), 0.2))
    fig = plots.posterior_contours([g], path=_out(tmp_path, "contours_mass.png"), ncol=1)
    _check_png(_out(tmp_path, "contours_mass.png"))
    ax = fig.axes[0]
    lines = next(c for c in ax.collections if hasattr(c, "levels") and not getattr(c, "filled", False))
    filled = next(c for c in ax.collections if getattr(c, "filled", False))
    # q's 2- and 1-sigma regions: circles of radius 0.4 and 0.2 around q's mean
    assert list(lines.levels) == sorted(float(v) for v in g.q_levels[:2])
    assert all(dashes is None for _, dashes in lines.get_linestyle())  # solid, although the log levels are < 0
    for radius, path in zip((0.4, 0.2), lines.get_paths()):
        r = (torch.as_tensor(path.vertices).float() - q_loc).norm(dim=1)
        assert float((r - radius).abs().max()) < 0.03
    # p's 3-, 2- and 1-sigma regions filled: circles of radius 3, 2 and 1 around the origin
    assert list(filled.levels[:3]) == sorted(float(v) for v in g.post_levels)
    for radius, level in zip((3.0, 2.0, 1.0), filled.levels[:3]):
        assert float(level) == pytest.approx(float(log_p.max()) - radius**2 / 2, abs=0.05 * radius)


def test_one_grid_renderer_and_one_posterior_figure(tmp_path):
    import pytest

    imgs = torch.rand(7, 1, 28, 28)
    fig = plots.image_grid(imgs, nrow=4, row_labels=["a", "b"], path=_out(tmp_path, "grid.png"))
    assert len(fig.axes) == 1  # image_grid is labelled_grid: one image in one axes
    _check_png(_out(tmp_path, "grid.png"))
    assert plots.mosaic(imgs, 4, pad=0).shape == (2 * 28, 4 * 28)
    rgb = torch.rand(5, 3, 6, 6)
    tiled = plots.mosaic(rgb, 2)  # colour images too: (rows*(6+2), 2*(6+2), 3), white between
    assert tiled.shape == (3 * 8, 2 * 8, 3)
    assert torch.equal(tiled[9:15, 9:15], rgb[3].permute(1, 2, 0))  # image 3: row 1, column 1, after 1 px of pad
    assert float(tiled[-1, -1].min()) == 1.0  # the empty sixth cell is white
    plots.image_grid(torch.rand(12, 3, 16, 16), nrow=4, cell=1.0, path=_out(tmp_path, "rgb.png"))
    _check_png(_out(tmp_path, "rgb.png"))

    grids = [_gaussian_grid(s) for s in (-0.5, 0.0, 0.5, 1.0)]
    fig = plots.posterior_contours(grids, imgs[:4], path=_out(tmp_path, "contours.png"), ncol=3)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 8  # (image, panel) for each of 4 inputs; the 2 unused slots hidden
    _check_png(_out(tmp_path, "contours.png"))
    fig = plots.posterior_vs_guides(None, [grids[:2], grids[2:]], ["guide A", "guide B"],
                                    path=_out(tmp_path, "guides.png"))
    assert [ax.get_title() for ax in fig.axes[:2]] == ["guide A", "guide B"]
    _check_png(_out(tmp_path, "guides.png"))
    with pytest.raises(ValueError, match="2 grid lists but 1 guide names"):
        plots.posterior_vs_guides(None, [grids, grids], ["one"])
    with pytest.raises(ValueError, match="one grid per data point"):
        plots.posterior_vs_guides(None, [grids, grids[:2]], ["a", "b"])
    with pytest.raises(ValueError, match="3 images for 4 grids"):
        plots.posterior_contours(grids, imgs[:3])


def _contour_vertices(ax, level: float) -> torch.Tensor:
    """The vertices of the contour line drawn at ``level`` in ``ax``."""
    sets = [c for c in ax.collections if hasattr(c, "levels") and len(c.levels) == 1 and c.levels[0] == level]
    assert len(sets) == 1, f"one contour at {level}, found {len(sets)}"
    return torch.as_tensor(sets[0].get_paths()[0].vertices)


def test_bubbles_draw_the_actual_priors_contours(tmp_path):
    import pyro.distributions as dist
    import pytest

    from pyrovae import likelihoods, nets
    from pyrovae.models import VAE

    loc, scale = torch.randn(50, 2) * 0.3, torch.full((50, 2), 0.2)
    labels = torch.arange(50) % 10
    centres = []
    for shift in (torch.zeros(2), torch.tensor([3.0, -2.0])):
        vae = VAE(nets.MLPEncoder((4,), (8,), 2), nets.MLPDecoder(2, (8,), (4,)),
                  dist.Normal(shift, torch.ones(2)).to_event(1), likelihoods.Gaussian(1.0))
        prior = inspect.prior_density(vae, n=201, codes=loc)
        fig = plots.latent_bubbles(loc, scale, labels, prior=prior, path=_out(tmp_path, f"bubbles_{int(shift[0])}.png"))
        _check_png(_out(tmp_path, f"bubbles_{int(shift[0])}.png"))
        ax = fig.axes[0]
        one_sigma = _contour_vertices(ax, float(prior.log_levels[0]))  # the 39.3% region
        # the 1-sigma region of N(shift, I) is the unit circle around shift
        assert torch.allclose(one_sigma.mean(0).float(), shift, atol=0.05)
        assert float((one_sigma.float() - shift).norm(dim=1).sub(1).abs().max()) < 0.05
        _contour_vertices(ax, float(prior.log_levels[1]))  # and the 86.5% region
        # the view holds the prior's grid and every bubble
        assert ax.get_xlim()[0] <= float(prior.z0[0]) and ax.get_xlim()[1] >= float(prior.z0[-1])
        # the two prior levels, then one legend entry per digit, coloured as its bubbles
        legend = ax.get_legend()
        texts = [t.get_text() for t in legend.get_texts()]
        assert texts[:2] == ["prior: 39.3% of its mass", "prior: 86.5% of its mass"]
        assert texts[2:] == [str(d) for d in range(10)]
        patches = [p for p in ax.patches if type(p).__name__ == "Ellipse"]
        for d, handle in enumerate(legend.legend_handles[2:]):
            assert handle.get_facecolor()[:3] == pytest.approx(patches[d].get_facecolor()[:3])  # bubble d has label d
        centres.append(one_sigma.mean(0))
    assert float(centres[1][0] - centres[0][0]) == pytest.approx(3.0, abs=0.05)
    with pytest.raises(ValueError, match="over dims"):
        plots.latent_bubbles(torch.randn(5, 3), torch.ones(5, 3), dims=(0, 2), prior=prior)


def test_every_latent_map_has_a_legend_of_the_labels(tmp_path):
    z, labels = torch.randn(200, 2), torch.arange(200) % 10
    fig = plots.latent_scatter(z, labels, label_name="class", path=_out(tmp_path, "scatter.png"))
    legend = fig.axes[0].get_legend()
    assert legend.get_title().get_text() == "class"
    assert [t.get_text() for t in legend.get_texts()] == [str(d) for d in range(10)]
    points = fig.axes[0].collections[0].get_facecolors()  # point 3 is a 3, coloured as the legend's 3
    assert tuple(points[3][:3]) == tuple(legend.legend_handles[3].get_facecolor()[:3])
    # a subset without some digits keeps each digit's colour
    sub = plots.latent_scatter(z[labels >= 5], labels[labels >= 5])
    sub_legend = sub.axes[0].get_legend()
    assert [t.get_text() for t in sub_legend.get_texts()] == ["5", "6", "7", "8", "9"]
    assert sub_legend.legend_handles[0].get_facecolor() == legend.legend_handles[5].get_facecolor()
    snaps = inspect.LatentSnapshots(torch.zeros(1), None)
    snaps.epochs, snaps.points = [0, 1], [z, 2 * z]
    fig = plots.latent_snapshots(snaps, labels, path=_out(tmp_path, "snapshots_legend.png"))
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [str(d) for d in range(10)]


def test_learning_curve_labels_of_close_stars_do_not_overlap(tmp_path):
    # as in the old committed figure ("84.1383.97"): two final NLLs a few epochs and 0.16 nats apart
    curves = {"a": ([1, 330], [120.0, 87.3]), "b": ([330, 340], [87.7, 87.9]), "c": ([1, 380], [110.0, 91.5])}
    final = {"a": (330, 84.13), "b": (340, 83.97), "c": (380, 87.83)}
    path = _out(tmp_path, "curves_close.png")
    fig = plots.learning_curves(curves, final, {"ref": 86.76}, path=path)
    _check_png(path)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    ax = fig.axes[0]
    boxes = {t.get_text(): t.get_window_extent(renderer) for t in ax.texts}
    assert set(boxes) == {"84.13", "83.97", "87.83"}
    names = sorted(boxes)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not boxes[a].overlaps(boxes[b]), f"labels {a} and {b} overlap"
    axes_box = ax.get_window_extent(renderer)
    assert all(axes_box.y0 <= box.y0 and box.y1 <= axes_box.y1 for box in boxes.values())


def test_unit_activity_marks_each_layer_of_a_hierarchy(tmp_path):
    activity = torch.cat([torch.full((4,), 0.5), torch.full((3,), 1e-4)])  # z1: 4 active, z2: none
    fig = plots.unit_activity(activity, layers=(4, 3), path=_out(tmp_path, "unit_activity_layers.png"))
    labels = [t.get_text() for t in fig.axes[0].texts]
    assert labels == ["z1: 4/4 active", "z2: 0/3 active"]
    assert [line.get_xdata()[0] for line in fig.axes[0].lines if line.get_linestyle() == "-"] == [3.5]
    _check_png(_out(tmp_path, "unit_activity_layers.png"))
    with pytest.raises(ValueError, match=r"layers \(4, 4\) sum to 8, but activity has 7 dimensions"):
        plots.unit_activity(activity, layers=(4, 4))
