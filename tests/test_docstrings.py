"""The docstring dialect: reST field lists (``:param x:``, ``:returns:``, ``:raises E:``), as Pyro
and Sphinx's autodoc read them. No Google (``Args:``) or NumPy (``Parameters`` + underline)
sections, and every public function and class has a docstring."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import pyrovae

# section headers of the other two dialects, on a line of their own
OTHER_DIALECTS = re.compile(
    r"^\s*(Args|Arguments|Returns|Yields|Raises|Attributes|Keyword Args):\s*$"
    r"|^\s*(Parameters|Returns|Raises|Yields|Examples|Notes)\s*\n\s*-{3,}\s*$",
    re.MULTILINE,
)


def _modules():
    for info in pkgutil.walk_packages(pyrovae.__path__, "pyrovae."):
        if not info.name.endswith("__main__"):
            yield importlib.import_module(info.name)


def _public_objects():
    for mod in _modules():
        for name in getattr(mod, "__all__", []):
            obj = getattr(mod, name)
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and obj.__module__ == mod.__name__:
                yield f"{mod.__name__}.{name}", obj


def _own_methods(obj):
    # methods written here, not those inherited from torch or Pyro (which use Google style)
    return [m for m in vars(obj).values() if inspect.isfunction(m)] if inspect.isclass(obj) else []


def test_the_other_dialects_pattern_finds_them():
    assert OTHER_DIALECTS.search("Summary.\n\n    Args:\n        x: the data\n")
    assert OTHER_DIALECTS.search("Summary.\n\n    Parameters\n    ----------\n    x : Tensor\n")
    assert not OTHER_DIALECTS.search("Summary.\n\n    :param x: the data\n    :returns: the codes\n")


def test_docstrings_use_rest_field_lists_only():
    wrong = [
        where
        for where, obj in _public_objects()
        if OTHER_DIALECTS.search(inspect.getdoc(obj) or "")
        or any(OTHER_DIALECTS.search(m.__doc__ or "") for m in _own_methods(obj))
    ]
    assert not wrong, f"write these docstrings with reST fields (:param x:, :returns:): {wrong}"


def test_every_public_function_and_class_has_a_docstring():
    missing = [where for where, obj in _public_objects() if not (obj.__doc__ or "").strip()]
    assert not missing, f"document these: {missing}"


def test_documented_parameters_exist():
    """A ``:param name:`` that names no parameter is a stale docstring."""
    stale = []
    for where, obj in _public_objects():
        fn = obj.__init__ if inspect.isclass(obj) else obj
        doc = inspect.getdoc(obj) or ""
        try:
            params = set(inspect.signature(fn).parameters)
        except (TypeError, ValueError):
            continue
        if any(p.kind is p.VAR_KEYWORD for p in inspect.signature(fn).parameters.values()):
            continue
        for name in re.findall(r":param (?:[\w\[\], .|]+ )?(\w+):", doc):
            if name not in params:
                stale.append(f"{where}: {name}")
    assert not stale, f"these :param: entries name no parameter: {stale}"
