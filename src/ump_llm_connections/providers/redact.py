"""Scrubbing secrets out of text that came from an upstream, before it reaches any message.

An upstream may echo what it was sent — its error bodies quote the request's headers, a proxy
prints ``Authorization: Bearer …`` — and that text flows into errors, ``last_error``, health
rows, events, webhooks and logs. ``redact`` removes, from any text:

- every fragment of ``MIN_FRAGMENT`` or more characters of a known secret (the connection's API
  key and its extra header values), so a cut-off or partly quoted secret goes as well as a whole;
- the value after an authentication scheme (``Bearer``, ``Basic``) or after a credential-like
  name (``Authorization``, ``x-api-key``, ``api-key``, ``x-goog-api-key``, ``*-token``,
  ``*secret*`` …) followed by ``:`` or ``=``, so a credential we do not know is removed too.

Redact first, then shorten: a cut made before redaction leaves a piece of a secret that no longer
matches the whole. Runs on error paths only; it scans the text once per fragment of each secret.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ump_llm_connections.domain.secret import SecretText

MIN_FRAGMENT = 6
REDACTED = "[redacted]"

_CREDENTIAL = re.compile(
    r"""
    \b(?:bearer|(?-i:Basic))\s+(?=[^\s"'<>,;]{4})                  # Bearer <credential>
    | (?<![\w-])[\w-]*(?:authorization|api[-_]?key|key|token|secret|password|credential)
      ["']?\s*[:=]\s*["']?(?!(?:bearer|basic)\s)                      # x-api-key: <credential>
    """,
    re.IGNORECASE | re.VERBOSE,
)
_VALUE = re.compile(r"""[^\s"'<>,;&)}\]]+""")


def redact(text: str, secrets: Iterable[SecretText]) -> str:
    """``text`` without any secret or any piece of one (see the module's docstring)."""
    text = _scrub_credentials(text)
    spans: list[tuple[int, int]] = []
    for sealed in secrets:
        secret = sealed.reveal()
        for start in range(len(secret) - MIN_FRAGMENT + 1):
            piece = secret[start : start + MIN_FRAGMENT]
            found = text.find(piece)
            while found != -1:
                spans.append((found, found + MIN_FRAGMENT))
                found = text.find(piece, found + 1)
    if not spans:
        return text
    spans.sort()
    out: list[str] = []
    kept = 0  # text before this index is already in `out`
    end = -1
    for start, stop in spans:
        if start > end:  # a new run of secret text begins
            if end >= 0:
                out.append(REDACTED)
            out.append(text[kept:start])
        end = max(end, stop)
        kept = end
    out.append(REDACTED)
    out.append(text[kept:])
    return "".join(out)


def _scrub_credentials(text: str) -> str:
    """Replace the value that follows an auth scheme or a credential-like name."""
    out: list[str] = []
    position = 0
    for match in _CREDENTIAL.finditer(text):
        if match.start() < position:
            continue
        value = _VALUE.match(text, match.end())
        if value is None:
            continue
        out.append(text[position : match.end()])
        out.append(REDACTED)
        position = value.end()
    if not out:
        return text
    out.append(text[position:])
    return "".join(out)
