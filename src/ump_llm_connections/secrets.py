"""Encryption of provider API keys at rest.

AES-256-GCM (``cryptography``) with the connection id as associated data, so a ciphertext copied
onto another row does not decrypt. A stored value reads ``v1.<key id>.<base64 nonce+ciphertext>``;
the key id (a hash prefix of the server key) lets a server tell at start-up that it holds the
wrong key, instead of returning garbage later, and lets rotation find rows still on an old key.

The server key comes from ``UMP_SECRET_KEY`` (32 bytes, url-safe base64) or from the key file
``$UMP_DATA_DIR/secret.key``, created with mode 0600 on first run.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ump_llm_connections.errors import ConfigurationError

_VERSION = "v1"
_NONCE_BYTES = 12


def generate_key() -> str:
    """A fresh server key, url-safe base64 of 32 random bytes."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def _decode_key(text: str, origin: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(text.strip().encode())
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise ConfigurationError(
            f"{origin} is not a valid key: it must be 32 bytes in url-safe base64 "
            "(generate one with `ump-llm generate-key`)"
        )
    return raw


class KeyBox:
    """Encrypts and decrypts API keys with one server key."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)
        self.key_id = hashlib.sha256(b"ump-key-id" + key).hexdigest()[:12]

    def encrypt(self, plaintext: str, *, context: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), context.encode())
        body = base64.urlsafe_b64encode(nonce + sealed).decode()
        return f"{_VERSION}.{self.key_id}.{body}"

    def decrypt(self, stored: str, *, context: str) -> str:
        _, key_id, body = _split(stored)
        if key_id != self.key_id:
            raise ConfigurationError(
                f"an API key was encrypted with server key {key_id}, "
                f"but this server holds key {self.key_id}"
            )
        raw = base64.urlsafe_b64decode(body.encode())
        try:
            plain = self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], context.encode())
        except InvalidTag:
            raise ConfigurationError(
                "a stored API key failed its integrity check (tampered, or moved between rows)"
            ) from None
        return plain.decode()


_STORED = re.compile(r"v1\.[0-9a-f]{12}\.[A-Za-z0-9_-]{38,}=*")


def is_encrypted(value: str) -> bool:
    """Whether a stored value is one of ours (``v1.<key id>.<nonce+ciphertext>``)."""
    return _STORED.fullmatch(value) is not None


def key_id_of(stored: str) -> str:
    """The id of the server key a stored value was encrypted with."""
    return _split(stored)[1]


def _split(stored: str) -> tuple[str, str, str]:
    parts = stored.split(".", 2)
    if len(parts) != 3 or parts[0] != _VERSION:
        raise ConfigurationError("a stored API key is not in a format this server knows")
    return parts[0], parts[1], parts[2]


def load_keybox(*, secret_key: str | None, key_file: Path, create: bool) -> KeyBox | None:
    """The server key from the environment or the key file.

    With ``create`` a missing key file is written (0600); without it a missing key gives None,
    and the caller decides whether that is an error (it is when encrypted rows exist).
    """
    if secret_key:
        return KeyBox(_decode_key(secret_key, "UMP_SECRET_KEY"))
    if key_file.exists():
        mode = key_file.stat().st_mode & 0o777
        if mode & 0o077:
            raise ConfigurationError(
                f"key file {key_file} is readable by others (mode {mode:o}); run chmod 600 on it"
            )
        return KeyBox(_decode_key(key_file.read_text(), f"key file {key_file}"))
    if not create:
        return None
    key_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(generate_key() + "\n")
    return KeyBox(_decode_key(key_file.read_text(), f"key file {key_file}"))
