"""The examples in docstrings run, so they cannot rot."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import observability
import orchestrator
import statecharts


def _modules() -> list[str]:
    names = []
    for package in (orchestrator, statecharts, observability):
        names.append(package.__name__)
        for info in pkgutil.walk_packages(package.__path__, prefix=package.__name__ + "."):
            if not info.name.endswith("__main__"):
                names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    failures, _ = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
    assert failures == 0
