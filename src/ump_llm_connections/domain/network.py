"""Which hosts a connection's ``base_url`` or a webhook's ``url`` may reach (the SSRF guard).

Cloud metadata endpoints are never a valid upstream: from inside a cloud machine they answer
anyone who asks with the machine's own credentials (AWS IAM role keys, GCP service-account
tokens, Azure managed identities), so a URL that reaches one would turn this server into a
credential leak. Refused, in every spelling:

- the addresses: ``169.254.169.254`` (AWS, GCP, Azure, Oracle, DigitalOcean, OpenStack…),
  AWS's ``fd00:ec2::254`` and EKS Pod Identity's ``fd00:ec2::23``, GCP's ``fd20:ce::254``,
  Alibaba's ``100.100.100.200``, Azure's WireServer ``168.63.129.16``, Oracle's legacy
  ``192.0.0.192``;
- all of link-local, ``169.254.0.0/16`` and ``fe80::/10``: the clouds serve metadata and
  credentials there at other addresses too (AWS ECS task credentials at ``169.254.170.2``,
  Tencent at ``169.254.0.23``) and no LLM server or webhook receiver lives there;
- the names: ``metadata.google.internal``, ``metadata`` (GCP's search domain completes it),
  ``metadata.goog``, ``instance-data`` (AWS), ``metadata.tencentyun.com``;
- the spellings a browser or libc accepts: one number (``2852039166``, ``0xa9fea9fe``), octal
  parts (``0251.0376.0251.0376``), fewer parts (``169.254.43518``), IPv4 inside IPv6 (mapped
  ``::ffff:a9fe:a9fe``, compatible, NAT64 ``64:ff9b::``, 6to4 ``2002::``, Teredo), brackets,
  percent-encoding, full-width digits and dots, upper case, trailing dots.

Loopback and private addresses stay allowed: Ollama on localhost is the usual local upstream.
A name is only checked here as written; what it resolves to at request time is checked by the
HTTP session (``providers/egress.py``), which uses ``blocked_address`` on every address it
connects to.

``UMP_UPSTREAM_ALLOWLIST`` may restrict hosts further (``upstream_allowed``).
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache
from urllib.parse import unquote, urlsplit

from ump_llm_connections.errors import InvalidInput

__all__ = [
    "METADATA_WHY",
    "IPAddress",
    "blocked_address",
    "check_upstream_allowed",
    "metadata_host",
    "parse_host",
    "upstream_allowed",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA_WHY = (
    "metadata endpoints hand out the cloud credentials of the machine this server runs on"
)

_METADATA_ADDRESSES: dict[IPAddress, str] = {
    ipaddress.ip_address("169.254.169.254"): "the cloud instance metadata endpoint",
    ipaddress.ip_address("fd00:ec2::254"): "AWS's IPv6 instance metadata endpoint",
    ipaddress.ip_address("fd00:ec2::23"): "AWS EKS Pod Identity's credentials endpoint",
    ipaddress.ip_address("fd20:ce::254"): "GCP's IPv6 metadata endpoint",
    ipaddress.ip_address("100.100.100.200"): "Alibaba Cloud's metadata endpoint",
    ipaddress.ip_address("168.63.129.16"): "Azure's WireServer (it serves VM extension settings)",
    ipaddress.ip_address("192.0.0.192"): "Oracle Cloud's legacy metadata endpoint",
}
_LINK_LOCAL: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...] = (
    (
        ipaddress.ip_network("169.254.0.0/16"),
        "a link-local address (169.254.0.0/16), where clouds serve instance metadata",
    ),
    (
        ipaddress.ip_network("fe80::/10"),
        "a link-local address (fe80::/10), where clouds serve instance metadata",
    ),
)
_METADATA_NAMES = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.tencentyun.com",
    }
)
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_SIIT = ipaddress.ip_network("::ffff:0:0:0/96")  # IPv4-translated (RFC 2765)
_COMPATIBLE = ipaddress.ip_network("::/96")  # IPv4-compatible (deprecated, still routed by some)

_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_OCTAL = re.compile(r"0[0-7]+")
_HEX = re.compile(r"0x[0-9a-f]*")
_NUMERIC = re.compile(r"[0-9]+|0x[0-9a-f]*")  # a host ending in one of these must be IPv4
_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})


def parse_host(host: str) -> IPAddress | str:
    """A URL's host as a client would connect to it: an address (IPv4 in any legacy spelling,
    IPv6 with or without brackets) or a normalised name (lower case, no trailing dot).

    Raises ``ValueError`` for a host that ends in a number but is no IPv4 address
    (``1.2.3.999``, ``1.2.3.09``): browsers refuse those, and libc would look them up as names.
    """
    text = unicodedata.normalize("NFKC", unquote(host)).translate(_DOTS).strip().lower()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if ":" in text:
        try:
            return ipaddress.IPv6Address(text.split("%", 1)[0])
        except ValueError:
            return text
    text = text.rstrip(".")
    return _legacy_ipv4(text) or text


def _legacy_ipv4(text: str) -> ipaddress.IPv4Address | None:
    """inet_aton's (and the WHATWG URL standard's) IPv4: 1 to 4 parts, each decimal, octal
    (leading 0) or hex (0x); the last part fills the remaining bytes. None: a name."""
    parts = text.split(".")
    if not _NUMERIC.fullmatch(parts[-1]):
        return None
    numbers = [_number(part) for part in parts]
    *head, last = numbers
    if (
        len(numbers) > 4
        or last is None
        or any(n is None or n > 255 for n in head)
        or last >= 256 ** (4 - len(head))
    ):
        raise ValueError(f"'{text}' ends in a number but is not a valid IPv4 address")
    value = last
    for index, number in enumerate(head):
        assert number is not None
        value += number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def _number(part: str) -> int | None:
    if _HEX.fullmatch(part):
        return int(part[2:] or "0", 16)
    if _OCTAL.fullmatch(part):
        return int(part, 8)
    if _DECIMAL.fullmatch(part):
        return int(part)
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries, in any of the transition formats."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if any(address in net for net in (*_NAT64, _SIIT)) or (
        address in _COMPATIBLE and int(address) > 1
    ):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


@lru_cache(maxsize=4096)
def blocked_address(address: IPAddress) -> str | None:
    """Why connecting to ``address`` is refused (a cloud metadata endpoint), or None."""
    candidates: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id is not None:
            address = ipaddress.IPv6Address(str(address).split("%", 1)[0])
            candidates = [address]
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            candidates.append(embedded)
    for candidate in candidates:
        if candidate in _METADATA_ADDRESSES:
            return f"{candidate} is {_METADATA_ADDRESSES[candidate]}"
        for network, why in _LINK_LOCAL:
            if candidate in network:
                return f"{candidate} is {why}"
    return None


def metadata_host(host: str) -> str | None:
    """Why a URL's host is refused (a metadata endpoint in any spelling), or None.

    Raises ``ValueError`` for a host that ends in a number but is no IPv4 address.
    """
    parsed = parse_host(host)
    if isinstance(parsed, str):
        return f"'{parsed}' is a cloud metadata name" if parsed in _METADATA_NAMES else None
    return blocked_address(parsed)


def _matches(parsed: IPAddress | str, entry: str) -> bool:
    entry = entry.strip().lower().rstrip(".")
    if entry.startswith("[") and entry.endswith("]"):
        entry = entry[1:-1]
    if isinstance(parsed, str):
        if entry.startswith("*."):
            return parsed.endswith(entry[1:])
        return parsed == entry
    try:
        return parsed in ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return False


def upstream_allowed(url: str, allowlist: Iterable[str]) -> bool:
    """Whether ``url``'s host is on ``UMP_UPSTREAM_ALLOWLIST`` (an empty list allows all).

    Entries: a host name (``api.openai.com``), ``*.suffix`` (any name under it, not the suffix
    itself), an IP address or a network (``10.0.0.0/8``). Addresses match in any spelling of
    the URL (``0x7f000001`` is ``127.0.0.1``); an address entry does not match a name, as no
    name is resolved here.
    """
    entries = list(allowlist)
    if not entries:
        return True
    try:
        host = urlsplit(url).hostname
        parsed = parse_host(host) if host else None
    except ValueError:
        return False
    return parsed is not None and any(_matches(parsed, entry) for entry in entries)


def check_upstream_allowed(url: str, allowlist: Iterable[str], *, field: str) -> None:
    """Raise a 422 naming ``field`` unless ``upstream_allowed(url, allowlist)``."""
    if not upstream_allowed(url, allowlist):
        raise InvalidInput(
            f"{field} must name a host on this server's upstream allowlist "
            "(UMP_UPSTREAM_ALLOWLIST); ask an admin to add the host, or to make the connection",
            field=field,
        )
