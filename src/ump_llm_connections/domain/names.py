"""Names of connections and pools: what makes two the same, and what a name may not be.

Connections and pools share one namespace (``llm_names`` in the database).
"""

from __future__ import annotations

import unicodedata
import uuid
from typing import Annotated

from pydantic import AfterValidator, StringConstraints

__all__ = ["MAX_NAME_KEY", "RESERVED_NAMES", "Name", "name_key"]

# Literal path segments under /api/connections and /api/pools (tests/test_names.py holds this
# to the app's routes), and the dot segments clients resolve away: no name may be one of them.
RESERVED_NAMES = frozenset(
    {
        "summary",
        "activity",
        "test",
        "health",
        "health-checks",
        "activate",
        "deactivate",
        "models",
        "usage",
        "stats",
        "share",
        "unshare",
        ".",
        "..",
    }
)
MAX_NAME_KEY = 400  # characters of a name once normalised (a database index entry stays small)


def name_key(name: str) -> str:
    """What makes two names the same: NFKC normalisation and Unicode case folding, stripped.

    Connections and pools share one namespace of these keys, which the database keeps unique
    (``llm_names``); the gateway and the API look names up by it.
    """
    if name.isascii():  # NFKC leaves ASCII alone and casefold() is lower() there: the fast path
        return name.strip().lower()
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
    return folded.strip()


def _parses_as_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _check_name(name: str) -> str:
    if not name.isprintable():
        raise ValueError("name must be printable characters only (no control or format characters)")
    if "/" in name:
        raise ValueError("name must not contain '/'")
    key = name_key(name)
    if _parses_as_uuid(name) or _parses_as_uuid(key):
        raise ValueError("name must not look like an id (a UUID)")
    if key in RESERVED_NAMES:
        raise ValueError(f"'{key}' is reserved (a word of the API's paths): choose another name")
    if len(key) > MAX_NAME_KEY:
        raise ValueError("name is too long once normalised")
    return name


Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_check_name),
]
