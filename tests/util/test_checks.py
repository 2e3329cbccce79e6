"""The shared argument checks (pyrovae._util.checks): what passes, and the message of what does
not; and the leaf rule: pyrovae._util imports nothing else from pyrovae."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest
import torch

from pyrovae._util import checks


def test_positive_int_and_at_least():
    assert checks.positive_int("z_dim", 3) == 3
    for bad in (0, -2):
        with pytest.raises(ValueError, match=rf"^z_dim must be a positive integer, got {bad}$"):
            checks.positive_int("z_dim", bad)
    for bad in (2.5, True, "3", None):
        with pytest.raises(ValueError, match=r"z_dim must be a positive integer, got .* \((float|bool|str|NoneType)\)"):
            checks.positive_int("z_dim", bad)
    assert checks.at_least("steps", 2, 2) == 2
    with pytest.raises(ValueError, match=r"^num_samples must be >= 2 for a standard error, got 1$"):
        checks.at_least("num_samples", 1, 2, " for a standard error")
    with pytest.raises(ValueError, match=r"steps must be an integer >= 2, got 3.0 \(float\)"):
        checks.at_least("steps", 3.0, 2)


def test_nonnegative_and_positive():
    assert checks.nonnegative("beta", 0) == 0.0 and isinstance(checks.nonnegative("beta", 1), float)
    assert checks.positive("scale", torch.tensor(0.5)) == 0.5
    with pytest.raises(ValueError, match=r"^beta must be >= 0, got -1$"):
        checks.nonnegative("beta", -1)
    with pytest.raises(ValueError, match=r"^beta must be >= 0, got nan$"):
        checks.nonnegative("beta", math.nan)
    with pytest.raises(ValueError, match=r"^scale must be > 0, got 0$"):
        checks.positive("scale", 0)
    with pytest.raises(ValueError, match=r"scale must be a number > 0, got 'big' \(str\)"):
        checks.positive("scale", "big")


def test_one_of():
    assert checks.one_of("interpolation", "linear", ("linear", "spherical")) == "linear"
    with pytest.raises(ValueError, match=r"^unknown interpolation 'cubic'; expected one of 'linear', 'spherical'$"):
        checks.one_of("interpolation", "cubic", ("linear", "spherical"))
    with pytest.raises(ValueError, match=r"expected one of 'a', None"):
        checks.one_of("mode", "b", {"a": 1, None: 2})  # a mapping's keys are the choices


def test_finite():
    x = torch.tensor([0.0, math.nan, math.inf, -math.inf, 1.0])
    with pytest.raises(ValueError, match=r"^train contains NaN or inf values at 3 positions; expected finite values$"):
        checks.finite("train", x)
    ok = torch.arange(4)
    assert checks.finite("labels", ok) is ok  # integers are always finite; the tensor comes back
    with pytest.raises(TypeError, match=r"data must be a torch\.Tensor, got list"):
        checks.finite("data", [1.0])


def test_unit_interval():
    x = torch.tensor([0.0, 0.5, 1.0])
    assert checks.unit_interval("images", x) is x
    with pytest.raises(ValueError, match=r"^images must lie in \[0, 1\], got 2 values outside \[0, 1\] or NaN"):
        checks.unit_interval("images", torch.tensor([-0.5, 0.5, math.nan]))  # NaN counts as outside
    with pytest.raises(ValueError, match=r"^ContinuousBernoulli needs data in \[0, 1\], got 1 values .*1\.5"):
        checks.unit_interval("data", torch.tensor([0.5, 1.5]), needed_by="ContinuousBernoulli")
    with pytest.raises(TypeError, match=r"binarize needs images in \[0, 1\] as floating-point values, got dtype "
                                        r"torch.uint8; .* / 255"):
        checks.unit_interval("images", torch.zeros(2, dtype=torch.uint8), needed_by="binarize")


def test_util_is_a_leaf():
    root = Path(checks.__file__).parent
    for path in sorted(root.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                # relative imports may only reach siblings inside _util (level 1)
                assert node.level <= 1, f"{path.name} imports from outside pyrovae._util: {ast.unparse(node)}"
                assert not (node.module or "").startswith("pyrovae"), f"{path.name}: {ast.unparse(node)}"
            elif isinstance(node, ast.Import):
                assert not any(a.name.startswith("pyrovae") for a in node.names), f"{path.name}: {ast.unparse(node)}"
