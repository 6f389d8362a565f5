"""Each package's ``__all__`` holds exactly its public names, sorted (as httpx does)."""

from __future__ import annotations

import importlib
import inspect
from types import ModuleType

import pytest

PACKAGES = [
    "ump_llm_connections",
    "ump_llm_connections.api",
    "ump_llm_connections.cli",
    "ump_llm_connections.domain",
    "ump_llm_connections.gateway",
    "ump_llm_connections.providers",
    "ump_llm_connections.store",
]
INCLUDED_PRIVATE = {"__version__"}


def _public(module: ModuleType) -> set[str]:
    """Names a reader of the package sees: not private, not a submodule, not ``annotations``
    (``from __future__``)."""
    return {
        name
        for name, value in vars(module).items()
        if (not name.startswith("_") or name in INCLUDED_PRIVATE)
        and not inspect.ismodule(value)
        and name != "annotations"
    }


def _isort_key(name: str) -> tuple[int, str]:
    """ruff's RUF022 order: CONSTANTS, then Classes, then everything else."""
    if name.isupper() or (name.startswith("_") and name.strip("_").isupper()):
        return 0, name
    if name[:1].isupper():
        return 1, name
    return 2, name


@pytest.mark.parametrize("package", PACKAGES)
def test_all_holds_the_public_names_sorted(package: str) -> None:
    module = importlib.import_module(package)
    exported = list(module.__all__)
    assert set(exported) == _public(module)
    assert exported == sorted(exported, key=_isort_key)
    assert len(exported) == len(set(exported))


def test_domain_does_not_leak_its_imports() -> None:
    domain = importlib.import_module("ump_llm_connections.domain")
    for leaked in ("BaseModel", "uuid", "InvalidInput", "Field", "datetime"):
        assert leaked not in domain.__all__
        assert not hasattr(domain, leaked) or inspect.ismodule(getattr(domain, leaked))


def test_every_domain_module_exports_what_it_defines() -> None:
    """A class or function defined in a domain module is in its ``__all__``, and every
    module's ``__all__`` reaches the package."""
    domain = importlib.import_module("ump_llm_connections.domain")
    for name in dir(domain):
        module = getattr(domain, name)
        if not inspect.ismodule(module) or not module.__name__.startswith(domain.__name__):
            continue
        defined = {
            n
            for n, v in vars(module).items()
            if not n.startswith("_")
            and getattr(v, "__module__", None) == module.__name__
            and not inspect.ismodule(v)
            and n != "annotations"
        }
        assert defined <= set(module.__all__), module.__name__
        assert set(module.__all__) <= set(domain.__all__), module.__name__
