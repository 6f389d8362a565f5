"""Fetch the web UI's third-party libraries from npm at pinned versions, into the package.

    python scripts/vendor_ui.py            # fetch (needs npm and the registry) and write
    python scripts/vendor_ui.py --check    # offline: the files on disk match VENDORED.json

The UI uses no build step and no CDN: these files are committed, so ``make run`` needs neither
Node.js nor a network. Each package is fetched with ``npm pack`` (the registry's own tarball,
checked against its integrity hash by npm), a few of its files are copied, its licence beside
them, and ``VENDORED.json`` records the name, version, licence, tarball integrity and the
SHA-256 of every file written. One change is made to a copied file, recorded there too: the
bare ``"preact"`` import of ``preact/hooks`` becomes a relative one, so the browser resolves it
without an import map (which the page's Content-Security-Policy would have to allow). Files are
named .js, a type every server knows as JavaScript (browsers refuse a module served otherwise).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "src" / "ump_llm_connections" / "ui" / "vendor"
MANIFEST = VENDOR / "VENDORED.json"


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    files: dict[str, str]  # path in the tarball -> file name in vendor/
    rewrites: dict[str, tuple[str, str]] = field(default_factory=dict)  # file -> (old, new)


PACKAGES = (
    Package("preact", "11.2.0", {"package/dist/preact.mjs": "preact.js"}),
    Package(
        "preact",
        "11.2.0",
        {"package/hooks/dist/hooks.mjs": "preact-hooks.js"},
        {"preact-hooks.js": ('from"preact"', 'from"./preact.js"')},
    ),
    Package("htm", "3.1.1", {"package/dist/htm.mjs": "htm.js"}),
    Package(
        "uplot",
        "1.6.32",
        {
            "package/dist/uPlot.iife.min.js": "uPlot.iife.min.js",
            "package/dist/uPlot.min.css": "uPlot.min.css",
        },
    ),
)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch() -> None:
    VENDOR.mkdir(parents=True, exist_ok=True)
    entries: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for package in PACKAGES:
            spec = f"{package.name}@{package.version}"
            packed = subprocess.run(  # noqa: S603 - fixed arguments, pinned versions
                ["npm", "pack", spec, "--json", "--pack-destination", tmp],  # noqa: S607
                capture_output=True,
                text=True,
                check=True,
            )
            info = json.loads(packed.stdout)[0]
            with tarfile.open(Path(tmp) / info["filename"]) as archive:
                meta = json.load(archive.extractfile("package/package.json"))  # type: ignore[arg-type]
                licence_name = f"{package.name}.LICENSE"
                licence = archive.extractfile("package/LICENSE")
                assert licence is not None, f"{spec} ships no LICENSE"
                (VENDOR / licence_name).write_bytes(licence.read())
                for member, target in package.files.items():
                    source = archive.extractfile(member)
                    assert source is not None, f"{spec} has no {member}"
                    data = source.read()
                    if target in package.rewrites:
                        old, new = package.rewrites[target]
                        assert data.count(old.encode()) == 1, f"{target}: {old} not found once"
                        data = data.replace(old.encode(), new.encode())
                    (VENDOR / target).write_bytes(data)
            entry = entries.setdefault(
                spec,
                {
                    "name": package.name,
                    "version": package.version,
                    "license": meta.get("license"),
                    "integrity": info["integrity"],
                    "files": {licence_name: sha256(VENDOR / licence_name)},
                    "rewrites": {},
                },
            )
            files = entry["files"]
            assert isinstance(files, dict)
            for target in package.files.values():
                files[target] = sha256(VENDOR / target)
            rewrites = entry["rewrites"]
            assert isinstance(rewrites, dict)
            for target, (old, new) in package.rewrites.items():
                rewrites[target] = f"{old} -> {new}"
    MANIFEST.write_text(json.dumps(list(entries.values()), indent=2) + "\n")
    print(f"wrote {MANIFEST.relative_to(ROOT)}")


def check() -> int:
    """0 when every recorded file is there with its hash and nothing else is in vendor/."""
    entries = json.loads(MANIFEST.read_text())
    recorded = {name: digest for entry in entries for name, digest in entry["files"].items()}
    problems = [
        f"{name}: missing or changed"
        for name, digest in recorded.items()
        if not (VENDOR / name).is_file() or sha256(VENDOR / name) != digest
    ]
    extra = {p.name for p in VENDOR.iterdir()} - set(recorded) - {MANIFEST.name}
    problems += [f"{name}: not recorded in {MANIFEST.name}" for name in sorted(extra)]
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="verify, offline, do not fetch")
    args = parser.parse_args()
    if args.check:
        return check()
    if shutil.which("npm") is None:
        print("npm is needed to fetch (Debian: apt-get install npm)", file=sys.stderr)
        return 2
    fetch()
    return check()


if __name__ == "__main__":
    sys.exit(main())
