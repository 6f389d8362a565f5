"""The SSRF guard at connect time: no socket to a cloud metadata address, whatever the URL said.

A URL's host is checked when it is saved (``domain/network.py``), but a name can resolve to a
metadata address only later (DNS rebinding, a record changed after the check), and rows saved
before the check existed are still served. So the HTTP session of the adapters, the health
probes and the webhooks opens its sockets through ``guarded_socket``: aiohttp calls it with each
address it is about to connect to — after DNS resolution, for IP literals as well — and a
metadata address gets an ``OSError`` instead of a socket. No packet is sent to it.

It runs once per new TCP connection (aiohttp keeps connections alive), and the check of an
address is cached (``blocked_address``).
"""

from __future__ import annotations

import errno
import ipaddress
import socket

from aiohappyeyeballs import AddrInfoType

from ump_llm_connections.domain.network import METADATA_WHY, blocked_address

__all__ = ["BlockedAddress", "guarded_socket"]


class BlockedAddress(OSError):
    """A connection to a cloud metadata address was refused before it was made."""


def guarded_socket(addr_info: AddrInfoType) -> socket.socket:
    """aiohttp's ``socket_factory``: a socket for ``addr_info``, unless it is a metadata
    address."""
    family, type_, proto, _, address = addr_info
    host = str(address[0])
    try:
        parsed = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        parsed = None  # not an IP address (a Unix socket path): nothing to guard
    refused = blocked_address(parsed) if parsed is not None else None
    if refused:
        raise BlockedAddress(errno.EACCES, f"refused: {refused}; {METADATA_WHY}")
    return socket.socket(family=family, type=type_, proto=proto)
