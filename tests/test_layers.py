"""The import contracts in pyproject.toml (``[tool.importlinter]``) hold, name every module of
the package, and a broken contract fails the linter."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import ump_llm_connections

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
PACKAGE = "ump_llm_connections"


def _lint(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _contracts() -> dict[str, dict[str, Any]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return {contract["id"]: contract for contract in config["contracts"]}


def _top_level_modules() -> set[str]:
    return {
        f"{PACKAGE}.{info.name}"
        for info in pkgutil.iter_modules(ump_llm_connections.__path__)
        if info.name != "__main__"
    }


def _layered(layers: list[str]) -> set[str]:
    return {name.strip() for layer in layers for name in layer.replace(":", "|").split("|")}


def test_import_contracts_hold() -> None:
    done = _lint()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 kept, 0 broken" in done.stdout


def test_contracts_name_every_module() -> None:
    """The SDK (sdk, sync) sits outside the layers and may import no module of the server."""
    contracts, every = _contracts(), _top_level_modules()
    sdk = {f"{PACKAGE}.sdk", f"{PACKAGE}.sync"}
    modules = every - sdk
    assert set(contracts["sdk"]["source_modules"]) == sdk
    assert modules <= set(contracts["sdk"]["forbidden_modules"])
    assert _layered(contracts["layers"]["layers"]) == modules
    assert set(contracts["sqlalchemy"]["source_modules"]) == modules - {f"{PACKAGE}.store"}
    web = {f"{PACKAGE}.api", f"{PACKAGE}.cli"}
    assert set(contracts["web"]["source_modules"]) == modules - web


def test_a_broken_contract_fails(tmp_path: Path) -> None:
    (tmp_path / ".importlinter").write_text(
        f"[importlinter]\nroot_package = {PACKAGE}\n\n"
        "[importlinter:contract:upside-down]\nname = the domain above the API\ntype = layers\n"
        f"layers =\n    {PACKAGE}.domain\n    {PACKAGE}.api\n"
    )
    done = _lint(cwd=tmp_path)
    assert done.returncode != 0
    assert "0 kept, 1 broken" in done.stdout
