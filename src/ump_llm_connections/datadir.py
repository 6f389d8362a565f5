"""Which database the CLI's ``connections`` commands open, so they never make a new one by accident.

In order: ``--database-url`` / ``UMP_DATABASE_URL``; ``UMP_DATA_DIR``; ``./data`` if it holds a
database; else the data folder of the last server started by this user, which ``ump-llm serve``
records in ``$XDG_STATE_HOME/ump-llm/server.json`` (``~/.local/state/ump-llm/server.json``).
Nothing found: a clear refusal, never a fresh empty database and key.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import orjson

from ump_llm_connections.config import Settings
from ump_llm_connections.errors import ConfigurationError
from ump_llm_connections.store.engine import redacted_url

DATABASE_FILE = "ump.db"


@dataclass(frozen=True)
class Located:
    settings: Settings
    source: str  # said to the user: where the choice came from

    def describe(self) -> str:
        return f"database: {redacted_url(self.settings.resolved_database_url)} ({self.source})"


def state_file() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "ump-llm" / "server.json"


def remember(settings: Settings) -> None:
    """Record where a starting server keeps its data (no secret: a URL's password is masked)."""
    record = {
        "data_dir": str(settings.data_dir.resolve()),
        "database": redacted_url(settings.resolved_database_url) if settings.database_url else None,
    }
    with contextlib.suppress(OSError, RuntimeError):  # no home, read-only: the CLI will ask
        path = state_file()
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(orjson.dumps(record))
        partial.replace(path)


def locate(database_url: str | None) -> Located:
    """The database a ``connections`` command should open (see the module's docstring)."""
    if database_url:
        given = os.environ.get("UMP_DATABASE_URL") == database_url
        source = "UMP_DATABASE_URL" if given else "--database-url"
        return Located(Settings(database_url=database_url), source)
    if os.environ.get("UMP_DATA_DIR"):
        return Located(Settings(), "UMP_DATA_DIR")
    here = Settings()
    if (here.data_dir / DATABASE_FILE).exists():
        return Located(here, f"{here.data_dir}{os.sep} in this directory")
    return _last_server(here.data_dir)


def _last_server(default: Path) -> Located:
    hint = (
        f"no database here ({default.resolve()}{os.sep} does not exist). Set UMP_DATA_DIR to the "
        "server's data folder, pass --database-url, or run this where the server runs"
    )
    try:
        path = state_file()
        record = orjson.loads(path.read_bytes())
    except (OSError, RuntimeError, orjson.JSONDecodeError):
        raise ConfigurationError(hint + ".") from None
    data_dir = Path(str(record.get("data_dir", "")))
    if record.get("database"):
        raise ConfigurationError(
            f"{hint}. The last server started uses {record['database']}: pass that with "
            f"--database-url (or UMP_DATABASE_URL), with UMP_DATA_DIR={data_dir} for its key."
        )
    if not (data_dir / DATABASE_FILE).exists():
        raise ConfigurationError(f"{hint}; the last server's data folder {data_dir} is gone.")
    return Located(Settings(data_dir=data_dir), f"the last server started, recorded in {path}")
