"""The documentation stays true: docstring examples pass, every public module is in the API
reference, and the code a user copies from the README and the docs runs.

The copied snippets run on tiny synthetic data: ``data.load_mnist`` returns a few hundred
random images, ``fit`` trains one epoch, and the importance-sampled estimators and the KL
fits use few samples and steps. Only sizes change; every call goes to the real function
with the snippet's own arguments, so a renamed function or argument still fails here.
"""

from __future__ import annotations

import doctest
import functools
import importlib
import inspect
import io
import pkgutil
import re
from pathlib import Path

import pytest
import torch

import pyrovae

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "source"
API = DOCS / "api"
#: a ``.. code-block:: python`` block with this class is a fragment (it needs names it does
#: not define) and is not run; every other Python block in the docs runs.
FRAGMENT = "fragment"


def _module_names() -> list[str]:
    names = ["pyrovae"]
    for info in pkgutil.walk_packages(pyrovae.__path__, "pyrovae."):
        if info.name.rsplit(".", 1)[-1] != "__main__":  # importing it runs the command
            names.append(info.name)
    return sorted(names)


def _is_public(name: str) -> bool:
    return not any(part.startswith("_") for part in name.split("."))


MODULES = _module_names()


# ---------------------------------------------------------------------------------------------
# docstring examples


def test_module_walk_finds_the_layers():
    for name in ("pyrovae.data.binarize", "pyrovae.models.vae", "pyrovae.cli.kl", "pyrovae._util.files"):
        assert name in MODULES
    assert not any(name.endswith("__main__") for name in MODULES)


def test_docstring_examples_pass():
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report = io.StringIO()
    with_examples = []
    for name in MODULES:
        module = importlib.import_module(name)
        for test in finder.find(module, name):
            if test.examples:
                with_examples.append(test.name)
                runner.run(test, out=report.write)
    results = runner.summarize(verbose=False)
    assert results.failed == 0, report.getvalue()
    # the examples the docs promise; each is real and fast
    for name in ("pyrovae.data.binarize.binarize", "pyrovae.kl.divergence.kl_both",
                 "pyrovae.train.schedules.exponential_lr", "pyrovae.nets.mlp.MLPEncoder",
                 "pyrovae.evaluate.bounds.elbo_terms"):
        assert name in with_examples, f"{name} lost its >>> example"
    assert results.attempted >= 15, f"only {results.attempted} docstring examples ran"


# ---------------------------------------------------------------------------------------------
# the API reference


def _automodules() -> dict[str, str]:
    """``module -> options text`` of every ``.. automodule::`` in docs/source/api."""
    found = {}
    pattern = re.compile(r"^\.\. automodule:: (\S+)\n((?:   :.*\n)*)", re.MULTILINE)
    for page in sorted(API.glob("*.rst")):
        for name, options in pattern.findall(page.read_text(encoding="utf-8")):
            assert name not in found, f"{name} is documented twice (again in {page.name})"
            found[name] = options
    return found


def test_every_public_module_is_in_the_api_reference():
    documented = _automodules()
    missing = [name for name in MODULES if _is_public(name) and name not in documented]
    assert not missing, f"add these modules to a page in docs/source/api/: {missing}"
    stale = [name for name in documented if name not in MODULES]
    assert not stale, f"docs/source/api/ names modules that no longer exist: {stale}"


def test_modules_with_their_own_definitions_document_their_members():
    documented = _automodules()
    for name, options in documented.items():
        module = importlib.import_module(name)
        own = [v for k, v in vars(module).items()
               if not k.startswith("_") and getattr(v, "__module__", None) == name and callable(v)]
        if own:
            assert ":members:" in options, f"{name} defines {len(own)} public objects; use automodule with :members:"


# ---------------------------------------------------------------------------------------------
# the README's and the docs' code


def _markdown_blocks(path: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", path.read_text(encoding="utf-8"), re.MULTILINE | re.DOTALL)


def _rst_blocks(path: Path) -> list[str]:
    """The ``.. code-block:: python`` blocks of a page that are not marked as fragments."""
    blocks = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)\.\. code-block:: python\s*$", line)
        if not m:
            continue
        indent = len(m.group(1))
        j, options = i + 1, []
        while j < len(lines) and re.match(r"^\s+:\w[\w-]*:", lines[j]):
            options.append(lines[j].strip())
            j += 1
        body = []
        for text in lines[j:]:
            if text.strip() and len(text) - len(text.lstrip()) <= indent:
                break
            body.append(text)
        if any(o.startswith(":class:") and FRAGMENT in o.split() for o in options):
            continue
        while body and not body[0].strip():  # the blank line after the directive
            body.pop(0)
        code = "\n".join(body)
        width = min(len(t) - len(t.lstrip()) for t in body if t.strip())
        blocks.append("\n".join(t[width:] for t in code.splitlines()) + "\n")
    return blocks


def _capped(fn, name: str, cap: int):
    """``fn`` with its argument ``name`` (given or defaulted, positional or keyword) at most ``cap``."""
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)  # a wrong argument still raises TypeError
        if name in signature.parameters:
            bound.apply_defaults()
            bound.arguments[name] = min(bound.arguments[name], cap)
        else:  # it goes on through **kwargs
            extra = next(p for p in signature.parameters.values() if p.kind is p.VAR_KEYWORD).name
            bound.arguments.setdefault(extra, {})
            bound.arguments[extra][name] = min(bound.arguments[extra].get(name, cap), cap)
        return fn(*bound.args, **bound.kwargs)

    return wrapper


@pytest.fixture
def tiny(monkeypatch, tmp_path):
    """Shrink what the snippets train and sample; the code paths stay the real ones."""
    from pyrovae import data, evaluate, kl, train

    def load_mnist(root=None):
        g = torch.Generator().manual_seed(0)
        images = torch.rand(320, 1, 28, 28, generator=g)
        labels = torch.randint(0, 10, (320,), generator=g)
        return data.ImageSet(images[:256], labels[:256]), data.ImageSet(images[256:], labels[256:])

    monkeypatch.setattr(data, "load_mnist", load_mnist)
    fit = _capped(train.fit, "epochs", 1)
    monkeypatch.setattr(train, "fit", fit)
    monkeypatch.setattr(pyrovae, "fit", fit)
    for fn in ("log_likelihood", "elbo_gap"):
        monkeypatch.setattr(evaluate, fn, _capped(getattr(evaluate, fn), "num_samples", 16))
    monkeypatch.setattr(kl, "fit_gaussian", _capped(kl.fit_gaussian, "steps", 30))
    monkeypatch.chdir(tmp_path)  # anything a snippet writes lands here


def _run(blocks: list[str], where: str) -> dict:
    namespace: dict = {"__name__": "__snippet__"}
    for k, code in enumerate(blocks):
        try:
            exec(compile(code, f"{where} block {k + 1}", "exec"), namespace)  # noqa: S102 (running the docs is the test)
        except Exception as e:
            raise AssertionError(f"{where}, Python block {k + 1} fails: {type(e).__name__}: {e}\n{code}") from e
    return namespace


def test_readme_python_blocks_run(tiny):
    blocks = _markdown_blocks(ROOT / "README.md")
    assert len(blocks) >= 3
    ns = _run(blocks, "README.md")
    assert ns["history"].test_elbo and ns["terms"].kl_method in ("analytic", "monte_carlo")
    assert ns["log_px"].shape == (len(ns["x_test"]),)


DOC_PAGES = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.rst") if _rst_blocks(p))


@pytest.mark.parametrize("page", DOC_PAGES)
def test_docs_python_blocks_run(tiny, page):
    _run(_rst_blocks(DOCS / page), f"docs/source/{page}")


def test_docs_pages_with_code_are_all_tested():
    # the pages whose snippets matter most; a parser change that found no blocks would pass
    # test_docs_python_blocks_run vacuously
    assert {"getting_started.rst", "evaluate.rst", "results/kl_study.rst"} <= set(DOC_PAGES)
    assert sum(len(_rst_blocks(DOCS / p)) for p in DOC_PAGES) >= 8


def test_fragment_marker_skips_only_marked_blocks(tmp_path):
    page = tmp_path / "page.rst"
    page.write_text(".. code-block:: python\n   :class: fragment\n\n   undefined_name\n\n"
                    "Text.\n\n.. code-block:: python\n\n   x = 1\n       # indented comment\n   y = x + 1\n\nMore.\n")
    assert _rst_blocks(page) == ["x = 1\n    # indented comment\ny = x + 1\n"]


# ---------------------------------------------------------------------------------------------
# the examples page is a one-time conversion of examples/README.md: keep the two in step


def test_examples_page_matches_examples_readme():
    readme = (ROOT / "examples" / "README.md").read_text(encoding="utf-8")
    page = (DOCS / "examples.rst").read_text(encoding="utf-8")
    for figure in re.findall(r"\]\((figures/[^)]+\.png)\)", readme):
        assert f"../../examples/{figure}" in page, f"docs/source/examples.rst lacks {figure}"
        assert (ROOT / "examples" / figure).exists()
    for command in re.findall(r"`(python examples/[^`]+)`", readme):
        assert f"``{command}``" in page, f"docs/source/examples.rst lacks the command {command!r}"
