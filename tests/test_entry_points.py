"""Every public entry point that takes data refuses bad data clearly, through the one check
(:func:`pyrovae.models.validation.check_data`).

Each entry point of :mod:`pyrovae.train`, :mod:`pyrovae.evaluate`, :mod:`pyrovae.inspect` and
:mod:`pyrovae.kl` that takes data is fed the same cases: a numpy array and a Python list (a
``TypeError`` naming the type and ``torch.as_tensor``), the wrong shape (both shapes named),
NaN (non-finite), 8-bit pixels as ``uint8`` and as floats in 0..255 (divide by 255), and
int64, bool and float64 binary data, which are converted and give exactly the result of
the float32 data. ``batch_size`` 0 or negative is a ``ValueError`` naming it. A test checks
that the table below lists every such entry point of the subpackages' ``__all__``. The
command line's ``--data`` goes through the same check.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect as pyinspect
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pyro
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import pyrovae.kl.guides
from pyrovae import evaluate, inspect, kl, train
from pyrovae.cli import main
from pyrovae.models import ConditionalVAE, build_vae
from pyrovae.models.semisupervised import build_m2
from pyrovae.nets import ConditionalMLPDecoder, ConditionalMLPEncoder
from pyrovae.train import fit

X_SHAPE = (1, 4, 4)
MNIST_SHAPE = (1, 28, 28)
FAST_FIT = {"epochs": 1, "batch_size": 4, "device": "cpu", "progress": False}


def _vae() -> nn.Module:
    torch.manual_seed(0)
    return build_vae(x_shape=X_SHAPE, z_dim=2, hidden=(8,))


def _cvae() -> nn.Module:
    torch.manual_seed(0)
    return ConditionalVAE(ConditionalMLPEncoder(X_SHAPE, 3, (8,), 2), ConditionalMLPDecoder(2, 3, (8,), X_SHAPE))


def _m2() -> nn.Module:
    torch.manual_seed(0)
    return build_m2(X_SHAPE, num_classes=3, z_dim=2, hidden=(8,))


def binary(n: int, shape: tuple[int, ...] = X_SHAPE, seed: int = 1) -> torch.Tensor:
    """``(n, *shape)`` float32 data in {0, 1}, with both values present."""
    x = (torch.rand(n, *shape, generator=torch.Generator().manual_seed(seed)) < 0.5).float()
    x.view(n, -1)[:, 0], x.view(n, -1)[:, 1] = 0.0, 1.0
    return x


@dataclasses.dataclass(frozen=True)
class Entry:
    """One public entry point: ``call(model, x, **kw)`` feeds ``x`` where it takes data."""

    name: str
    func: Callable  # the public function (for the completeness check)
    call: Callable[..., Any]
    model: Callable[[], Any] = _vae
    n: int = 8  # data points it is given
    x_shape: tuple[int, ...] = X_SHAPE
    batched: bool = True  # takes batch_size=
    key: Callable[[Any], Any] = lambda r: r  # what of the result to compare across dtypes


def _labels(x: Any) -> torch.Tensor:
    return torch.arange(len(x)) % 3


ENTRIES = [
    # -- training -----------------------------------------------------------------------------
    Entry("fit(train_images)", fit, lambda m, x, **kw: fit(m, x, **{**FAST_FIT, **kw}),
          key=lambda h: (h.train_elbo,)),
    Entry("fit(test_images)", fit, lambda m, x, **kw: fit(m, binary(8), x, **{**FAST_FIT, **kw}),
          key=lambda h: (h.train_elbo, h.test_elbo)),
    Entry("fit_conditional", train.fit_conditional,
          lambda m, x, **kw: train.fit_conditional(m, x, _labels(x), **{"epochs": 1, "batch_size": 4, **kw}),
          model=_cvae),
    Entry("fit_m2", train.fit_m2,
          lambda m, x, **kw: train.fit_m2(m, x, _labels(x), binary(8), **{"epochs": 1, "batch_size": 4,
                                                                             "progress": False, **kw}),
          model=_m2, key=lambda h: (h.labelled_loss, h.unlabelled_loss)),
    Entry("check_training_data", train.check_training_data,
          lambda m, x: train.check_training_data(m, x, "dynamic", "x"), batched=False),
    # -- evaluation ---------------------------------------------------------------------------
    Entry("elbo_terms", evaluate.elbo_terms, lambda m, x, **kw: evaluate.elbo_terms(m, x, **kw)),
    Entry("elbo", evaluate.elbo, lambda m, x, **kw: evaluate.elbo(m, x, **kw)),
    Entry("log_likelihood", evaluate.log_likelihood,
          lambda m, x, **kw: evaluate.log_likelihood(m, x, num_samples=4, **kw)),
    Entry("elbo_gap", evaluate.elbo_gap, lambda m, x, **kw: evaluate.elbo_gap(m, x, num_samples=4, **kw)),
    Entry("importance_stats", evaluate.importance_stats,
          lambda m, x, **kw: evaluate.importance_stats(m, x, num_samples=4, chunk=2, **kw)),
    Entry("log_weights", evaluate.log_weights, lambda m, x: evaluate.log_weights(m, x, 4), batched=False),
    Entry("anomaly_scores", evaluate.anomaly_scores, lambda m, x, **kw: evaluate.anomaly_scores(m, x, **kw)),
    Entry("encode_all", evaluate.encode_all, lambda m, x, **kw: evaluate.encode_all(m, x, **kw)),
    Entry("unit_activity", evaluate.unit_activity, lambda m, x, **kw: evaluate.unit_activity(m, x, **kw)),
    Entry("active_units", evaluate.active_units, lambda m, x, **kw: evaluate.active_units(m, x, 1e-3, **kw)),
    Entry("kl_per_dim", evaluate.kl_per_dim, lambda m, x, **kw: evaluate.kl_per_dim(m, x, **kw)),
    Entry("aggregate_posterior", evaluate.aggregate_posterior,
          lambda m, x, **kw: evaluate.aggregate_posterior(m, x, **kw)),
    Entry("mutual_information", evaluate.mutual_information,
          lambda m, x, **kw: evaluate.mutual_information(m, x, **kw)),
    Entry("aggregate_kl", evaluate.aggregate_kl, lambda m, x, **kw: evaluate.aggregate_kl(m, x, **kw)),
    Entry("collapse_report", evaluate.collapse_report, lambda m, x, **kw: evaluate.collapse_report(m, x, **kw)),
    # -- inspection ---------------------------------------------------------------------------
    Entry("encode_dataset", inspect.encode_dataset, lambda m, x, **kw: inspect.encode_dataset(m, x, **kw)),
    Entry("LatentSnapshots", inspect.LatentSnapshots, lambda m, x: _snapshot(m, x), batched=False,
          key=lambda s: s.points),
    Entry("posterior_decodes", inspect.posterior_decodes, lambda m, x: inspect.posterior_decodes(m, x, 2), n=2,
          batched=False),
    Entry("apply_attribute", inspect.apply_attribute, lambda m, x: inspect.apply_attribute(m, x, torch.ones(2)),
          n=2, batched=False),
    Entry("denoise", inspect.denoise, lambda m, x: inspect.denoise(m, x), n=2, batched=False),
    Entry("interpolate_inputs", inspect.interpolate_inputs,
          lambda m, x: inspect.interpolate_inputs(m, x, binary(1, seed=2), steps=3), n=1, batched=False),
    Entry("traversal", inspect.traversal, lambda m, x: inspect.traversal(m, x, n=3), n=1, batched=False),
    Entry("posterior_grid", inspect.posterior_grid, lambda m, x: inspect.posterior_grid(m, x, n=11), n=1,
          batched=False),
    # -- KL studies ---------------------------------------------------------------------------
    Entry("compare_guides(train_x)", kl.compare_guides, lambda m, x, **kw: _compare(x, binary(4, MNIST_SHAPE), **kw),
          model=lambda: None, x_shape=MNIST_SHAPE, key=lambda c: [r.history.train_elbo for r in c.results.values()]),
    Entry("compare_guides(test_x)", kl.compare_guides, lambda m, x, **kw: _compare(binary(8, MNIST_SHAPE), x, **kw),
          model=lambda: None, n=4, x_shape=MNIST_SHAPE, key=lambda c: (c.test_x, c.results["elbo"].elbo)),
    Entry("posterior_grids", pyrovae.kl.guides.posterior_grids,
          lambda m, x: pyrovae.kl.guides.posterior_grids(m, x, size=11), n=2, batched=False),
]
BY_NAME = {e.name: e for e in ENTRIES}
IDS = [e.name for e in ENTRIES]


def _snapshot(vae, x):
    snaps = inspect.LatentSnapshots(x)
    snaps.record(0, vae)
    return snaps


def _compare(train_x, test_x, **kw):
    return kl.compare_guides(train_x, test_x, **{"epochs": 1, "methods": ("elbo",), "hidden": (8,), "particles": 2,
                                                 "batch_size": 4, "eval_samples": 2, **kw})


#: public functions whose images belong to no model, so there is no x_shape or likelihood to check against
MODEL_FREE = {"corrupt", "stroke_thickness", "thickness_vector"}
DATA_PARAMETERS = {"x", "x0", "x1", "x_corrupted", "images", "train_images", "test_images", "train_x", "test_x",
                   "x_labelled", "x_unlabelled"}


def test_the_table_lists_every_public_entry_point_that_takes_data():
    found = set()
    for module in (train, evaluate, inspect, kl, pyrovae.kl.guides):
        for name in module.__all__:
            obj = getattr(module, name)
            if not (pyinspect.isfunction(obj) or obj is inspect.LatentSnapshots):
                continue  # result types (NamedTuples, dataclasses) hold data, they take none from a user
            if DATA_PARAMETERS & set(pyinspect.signature(obj).parameters):
                found.add(obj)
    covered = {e.func for e in ENTRIES}
    missing = sorted(f.__name__ for f in found - covered if f.__name__ not in MODEL_FREE)
    assert missing == [], f"entry points that take data but are not tested here: {missing}"
    assert covered <= found | {inspect.LatentSnapshots}


# -- the cases ---------------------------------------------------------------------------------
def _run(entry: Entry, x: Any, **kw) -> Any:
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    return entry.call(entry.model(), x, **kw)


@functools.cache
def _reference(name: str) -> list:
    entry = BY_NAME[name]
    return _flat(entry.key(_run(entry, binary(entry.n, entry.x_shape))))


def _flat(r: Any) -> list:
    """The numbers and tensors of a result, in order, without timings or models."""
    if isinstance(r, torch.Tensor):
        return [r.detach().cpu()]
    if isinstance(r, nn.Module):
        return []
    if dataclasses.is_dataclass(r) and not isinstance(r, type):
        r = {f.name: getattr(r, f.name) for f in dataclasses.fields(r)}
    if isinstance(r, dict):
        return [y for k in sorted(r) if "seconds" not in k for y in [k, *_flat(r[k])]]
    if isinstance(r, (list, tuple)):
        return [y for v in r for y in _flat(v)]
    return [r]


def _same(a: list, b: list) -> bool:
    if len(a) != len(b):
        return False
    for u, v in zip(a, b):
        if isinstance(u, torch.Tensor):
            if not (isinstance(v, torch.Tensor) and u.dtype == v.dtype and torch.equal(u, v)):
                return False
        elif isinstance(u, float) and isinstance(v, float) and math.isnan(u) and math.isnan(v):
            continue
        elif u != v:
            return False
    return True


def _message(entry: Entry, x: Any, kind: type[Exception]) -> str:
    with pytest.raises(kind) as caught:
        _run(entry, x)
    return str(caught.value)


@pytest.mark.parametrize("name", IDS)
def test_a_numpy_array_names_numpy_and_the_conversion(name):
    entry = BY_NAME[name]
    msg = _message(entry, binary(entry.n, entry.x_shape).numpy(), TypeError)
    assert "numpy.ndarray" in msg and "torch.as_tensor(" in msg, msg


@pytest.mark.parametrize("name", IDS)
def test_a_python_list_names_the_conversion(name):
    entry = BY_NAME[name]
    msg = _message(entry, binary(entry.n, entry.x_shape).tolist(), TypeError)
    assert "got list" in msg and "torch.as_tensor(" in msg, msg


@pytest.mark.parametrize("name", IDS)
def test_the_wrong_shape_names_both_shapes(name):
    entry = BY_NAME[name]
    *lead, h, w = entry.x_shape
    bad = binary(entry.n, (*lead, h + 1, w + 1))
    msg = _message(entry, bad, ValueError)
    expected = f"(batch, {', '.join(map(str, entry.x_shape))})"
    assert f"has shape {tuple(bad.shape)}" in msg and expected in msg, msg


@pytest.mark.parametrize("name", IDS)
def test_nan_is_refused_as_non_finite(name):
    entry = BY_NAME[name]
    x = binary(entry.n, entry.x_shape)
    x[0, 0, 1, 1] = float("nan")
    msg = _message(entry, x, ValueError)
    assert "NaN or inf at 1 positions" in msg and "finite" in msg, msg


@pytest.mark.parametrize("name", IDS)
def test_uint8_pixels_are_told_to_divide_by_255(name):
    entry = BY_NAME[name]
    x = (binary(entry.n, entry.x_shape) * 255).to(torch.uint8)
    msg = _message(entry, x, ValueError)
    assert "torch.uint8" in msg and "[0, 255]" in msg and ".float() / 255" in msg, msg


@pytest.mark.parametrize("name", IDS)
def test_float_pixels_in_0_to_255_are_told_to_divide_by_255(name):
    entry = BY_NAME[name]
    msg = _message(entry, binary(entry.n, entry.x_shape) * 255, ValueError)
    assert "values up to 255 look like 8-bit pixels" in msg and "/ 255" in msg, msg


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool, torch.float64], ids=str)
@pytest.mark.parametrize("name", IDS)
def test_integer_bool_and_float64_binary_data_give_the_float32_result(name, dtype):
    entry = BY_NAME[name]
    x = binary(entry.n, entry.x_shape).to(dtype)
    reference = _reference(name)
    assert any(isinstance(v, (torch.Tensor, float, int, str)) for v in reference), reference  # something to compare
    assert _same(_flat(entry.key(_run(entry, x))), reference)


@pytest.mark.parametrize("batch_size", [0, -3])
@pytest.mark.parametrize("name", [e.name for e in ENTRIES if e.batched])
def test_a_batch_size_below_one_is_a_clear_error(name, batch_size):
    entry = BY_NAME[name]
    with pytest.raises(ValueError, match=rf"batch_size must be .*(positive integer|>= 1), got {batch_size}"):
        _run(entry, binary(entry.n, entry.x_shape), batch_size=batch_size)


def test_grey_levels_are_encoded_but_not_scored_under_a_bernoulli_likelihood():
    grey = torch.rand(6, *X_SHAPE, generator=torch.Generator().manual_seed(3))
    assert evaluate.encode_all(_vae(), grey).loc.shape == (6, 2)  # the encoder takes grey levels
    with pytest.raises(ValueError, match="Bernoulli likelihood needs binary data"):
        evaluate.log_likelihood(_vae(), grey, num_samples=4)
    with pytest.raises(ValueError, match=r"x has values in \[-0\.9\d*, .*takes binary data or grey levels in \[0, 1\]"):
        evaluate.encode_all(_vae(), grey * 2 - 1)


# -- data in batches -----------------------------------------------------------------------------
def test_a_loader_gives_the_tensor_result_and_each_batch_is_checked():
    x = binary(8)
    loader = DataLoader(TensorDataset(x, _labels(x)), batch_size=3)
    assert torch.equal(evaluate.encode_all(_vae(), loader).loc, evaluate.encode_all(_vae(), x, batch_size=3).loc)
    bad = [x[:4], x[4:].clone()]
    bad[1][2, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"x \(batch 1\) contains NaN or inf"):
        evaluate.elbo_terms(_vae(), bad)
    with pytest.raises(ValueError, match=r"x \(batch 0\) has shape \(4, 16\) but this VAE expects"):
        evaluate.log_likelihood(_vae(), [x[:4].flatten(1)], num_samples=4)
    with pytest.raises(TypeError, match=r"list of 8 single data points .* torch\.stack\(x\)"):
        evaluate.elbo_terms(_vae(), list(x))
    with pytest.raises(ValueError, match="empty iterable"):
        evaluate.elbo_terms(_vae(), iter([]))


def test_an_image_set_is_pointed_to_its_images():
    x = binary(4)

    class Images:  # what pyrovae.data.ImageSet looks like to the check
        images = x

        def __len__(self):
            return len(self.images)

    with pytest.raises(TypeError, match=r"pass its tensor, x\.images"):
        evaluate.elbo_terms(_vae(), Images())
    assert len(fit(_vae(), Images(), **FAST_FIT)) == 1  # fit takes an ImageSet's .images itself


def test_single_input_functions_refuse_a_batch_and_take_one_point():
    x = binary(2)
    one = r"x must be one input, of shape \(1, 4, 4\) or \(1, 1, 4, 4\); got a batch of 2"
    with pytest.raises(ValueError, match=one):
        inspect.traversal(_vae(), x, n=3)
    images, values = inspect.traversal(_vae(), x[0], n=3)  # one point without its batch dimension
    assert images.shape == (2 * 3, *X_SHAPE) and values.shape == (3,)
    with pytest.raises(ValueError, match=r"x1 must be one input"):
        inspect.interpolate_inputs(_vae(), x[0], x, steps=3)


# -- the command line ------------------------------------------------------------------------------
def test_the_command_line_checks_the_data_it_evaluates(tmp_path, capsys):
    # a Bernoulli model's checkpoint, evaluated on a table with negative values: one line, exit 2
    torch.manual_seed(0)
    vae = build_vae(x_shape=(6,), z_dim=2, hidden=(8,))
    fit(vae, binary(20, (6,)), epochs=1, batch_size=10, device="cpu", progress=False,
        checkpoint=tmp_path / "run" / "checkpoint.pt")
    table = tmp_path / "table.npy"
    np.save(table, np.random.default_rng(0).standard_normal((40, 6)).astype(np.float32))
    code = main(["evaluate", str(tmp_path / "run"), "--samples", "4", "--n", "10", "--data", str(table)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("pyrovae: error: --data "), err
    assert "the test data has values in [" in err and "needs probabilities in [0, 1]" in err, err
    assert "Traceback" not in err
