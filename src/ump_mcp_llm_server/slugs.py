"""Tool names for connections and pools, and the table that maps them back to ids.

A name is ``query_<slug>``: the guide's scheme (lower-case, runs of non-alphanumerics become
``_``, trimmed), in ASCII (accents are dropped, MCP allows only ``[A-Za-z0-9_.-]``) and short
enough for MCP's 64 characters. The guide turns a tool name back into a connection name by
title-casing it, which cannot work ("OpenAI GPT-4" is not "Openai Gpt 4"); the table here maps
each name to the id it was given to instead.

Two names can make one slug ("A b", "A-b"): the first in the given order gets ``query_a_b``,
the next ``query_a_b_2``, and so on. A name, once given, stays with its connection while the
connection keeps a name of that slug, so rebuilding the table never moves a tool name to
another connection while the first one still holds it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

__all__ = ["EMPTY_SLUG", "MAX_TOOL_NAME", "PREFIX", "SlugTable", "slug"]

PREFIX = "query_"
MAX_TOOL_NAME = 64  # what MCP clients accept
_SUFFIX_ROOM = 4  # "_999"
_MAX_SLUG = MAX_TOOL_NAME - len(PREFIX) - _SUFFIX_ROOM
_NON_ALNUM = re.compile(r"[^a-z0-9]+")
EMPTY_SLUG = "llm"  # a name with no ASCII letter or digit at all ("Модель")


def slug(name: str) -> str:
    """``"OpenAI GPT-4"`` -> ``"openai_gpt_4"``; ``"Café"`` -> ``"cafe"``."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    cut = _NON_ALNUM.sub("_", ascii_name.lower()).strip("_")[:_MAX_SLUG].rstrip("_")
    return cut or EMPTY_SLUG


class SlugTable:
    """Tool name per id, kept across rebuilds (see the module's docstring)."""

    def __init__(self) -> None:
        self._given: dict[str, tuple[str, str]] = {}  # id -> (slug, tool name)

    def update(self, entries: Sequence[tuple[str, str]]) -> dict[str, str]:
        """Give every ``(id, name)`` a tool name; answer ``{tool name: id}`` in the given order.

        ``entries`` come in a stable order (creation time, then id): it decides who gets the
        plain name when two new entries share a slug."""
        slugs = {entry_id: slug(name) for entry_id, name in entries}
        kept = {
            entry_id: given
            for entry_id, given in self._given.items()
            if entry_id in slugs and given[0] == slugs[entry_id]
        }
        taken = {tool for _, tool in kept.values()}
        for entry_id, _ in entries:
            if entry_id in kept:
                continue
            base = PREFIX + slugs[entry_id]
            tool, n = base, 1
            while tool in taken:
                n += 1
                tool = f"{base}_{n}"
            taken.add(tool)
            kept[entry_id] = (slugs[entry_id], tool)
        self._given = kept
        return {kept[entry_id][1]: entry_id for entry_id, _ in entries}
