"""Encryption of provider API keys and webhook secrets at rest, under a ring of server keys.

AES-256-GCM (``cryptography``) with the row's id as associated data, so a ciphertext copied
onto another row does not decrypt. A stored value reads ``v1.<key id>.<base64 nonce+ciphertext>``;
the key id (a hash prefix of the server key) lets a server tell at start-up that it lacks the
key a row needs, instead of returning garbage later, and lets rotation find rows on an old key.

The ring: a primary key encrypts; older keys only decrypt, each found by the key id a stored
value names. Keys come from ``UMP_SECRET_KEY`` (the primary, 32 bytes in url-safe base64) with
``UMP_PREVIOUS_SECRET_KEYS`` (comma-separated, decrypt only), or else from the key file
``$UMP_DATA_DIR/secret.key``: one key per line, the primary first, mode 0600, created on first
run and only ever replaced whole (temporary file, fsync, rename).

A ring read from the key file follows it: before each encryption, and when a stored value names
a key the ring lacks, the file's identity (inode, size, modification time: one ``stat``, no read)
is compared with the one last read, and the file is read again only when it changed. So
``ump-llm rotate-key`` reaches a running server without a restart.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import re
import secrets
from collections.abc import Sequence
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ump_llm_connections.errors import ConfigurationError

__all__ = [
    "KeyBox",
    "KeyFile",
    "Signature",
    "decode_key",
    "encode_key",
    "generate_key",
    "is_encrypted",
    "key_id_for",
    "key_id_of",
    "load_keybox",
]

log = logging.getLogger(__name__)

_VERSION = "v1"
_NONCE_BYTES = 12

Signature = tuple[int, int, int]  # a file's inode, size and modification time (ns)


def generate_key() -> str:
    """A fresh server key, url-safe base64 of 32 random bytes."""
    return encode_key(secrets.token_bytes(32))


def encode_key(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode()


def decode_key(text: str, origin: str) -> bytes:
    """A key's 32 bytes from its url-safe base64; ``origin`` names it in the error."""
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


def key_id_for(key: bytes) -> str:
    """The id stored values name their key by (it reveals nothing of the key)."""
    return hashlib.sha256(b"ump-key-id" + key).hexdigest()[:12]


class KeyFile:
    """The key file: one key per line, the primary first; private (0600), written whole."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def signature(self) -> Signature | None:
        """What changes when the file is replaced or edited; None when it is missing."""
        try:
            found = self.path.stat()
        except FileNotFoundError:
            return None
        return found.st_ino, found.st_size, found.st_mtime_ns

    def load(self) -> tuple[Signature | None, list[bytes]]:
        """The keys, primary first, with the signature taken before reading them (a change
        made while reading is then seen by the next comparison)."""
        seen = self.signature()
        mode = self.path.stat().st_mode & 0o777
        if mode & 0o077:
            raise ConfigurationError(
                f"key file {self.path} is readable by others (mode {mode:o}); run chmod 600 on it"
            )
        keys: list[bytes] = []
        for number, line in enumerate(self.path.read_text().splitlines(), 1):
            if line.strip():
                keys.append(decode_key(line, f"key file {self.path} (line {number})"))
        if not keys:
            raise ConfigurationError(f"key file {self.path} holds no key")
        return seen, keys

    def create(self) -> None:
        """Write a first key; never over an existing file."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(generate_key() + "\n")

    def write(self, keys: Sequence[bytes]) -> None:
        """Replace the file in one step: a crash leaves the old file or the new one, whole."""
        partial = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        partial.unlink(missing_ok=True)
        try:
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write("".join(encode_key(key) + "\n" for key in keys))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(partial, self.path)
        finally:
            partial.unlink(missing_ok=True)
        folder = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)  # the rename itself survives a power cut
        finally:
            os.close(folder)


class KeyBox:
    """Encrypts with the primary key, decrypts with any key of the ring."""

    def __init__(self, primary: bytes, *older: bytes) -> None:
        self._ring: dict[str, AESGCM] = {}
        self._set_ring([primary, *older])
        self._key_file: KeyFile | None = None
        self._seen: Signature | None = None

    @classmethod
    def following(cls, key_file: KeyFile) -> KeyBox:
        """The keys of the key file, read again whenever the file changes."""
        seen, keys = key_file.load()
        box = cls(*keys)
        box._key_file, box._seen = key_file, seen
        return box

    @property
    def key_id(self) -> str:
        """The primary key's id: new values are encrypted under it."""
        return next(iter(self._ring))

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Every key of the ring, the primary first."""
        return tuple(self._ring)

    def encrypt(self, plaintext: str, *, context: str) -> str:
        self._follow_file()
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._ring[self.key_id].encrypt(nonce, plaintext.encode(), context.encode())
        body = base64.urlsafe_b64encode(nonce + sealed).decode()
        return f"{_VERSION}.{self.key_id}.{body}"

    def decrypt(self, stored: str, *, context: str) -> str:
        _, key_id, body = _split(stored)
        aead = self._ring.get(key_id)
        if aead is None and self._follow_file():
            aead = self._ring.get(key_id)
        if aead is None:
            raise ConfigurationError(
                f"a stored secret was encrypted with server key {key_id}, "
                f"but this server holds key {', '.join(self._ring)}"
            )
        raw = base64.urlsafe_b64decode(body.encode())
        try:
            plain = aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], context.encode())
        except InvalidTag:
            raise ConfigurationError(
                "a stored secret failed its integrity check (tampered, or moved between rows)"
            ) from None
        return plain.decode()

    def reencrypt(self, stored: str, *, context: str) -> str:
        """The value under the primary key (unchanged when it already is)."""
        if key_id_of(stored) == self.key_id:
            return stored
        return self.encrypt(self.decrypt(stored, context=context), context=context)

    def _set_ring(self, keys: Sequence[bytes]) -> None:
        self._ring = {}
        for key in keys:
            self._ring.setdefault(key_id_for(key), AESGCM(key))

    def _follow_file(self) -> bool:
        """Read the key file again if it changed; whether the ring did."""
        if self._key_file is None:
            return False
        now = self._key_file.signature()
        if now == self._seen:
            return False
        try:
            seen, keys = self._key_file.load()
        except (ConfigurationError, OSError) as exc:
            self._seen = now  # warn once per change, not on every call
            reason = exc.message if isinstance(exc, ConfigurationError) else exc.strerror
            log.warning("key file changed but was not read (%s): keeping the keys in use", reason)
            return False
        self._seen = seen
        before = self.key_ids
        self._set_ring(keys)
        if self.key_ids == before:
            return False
        log.info(
            "key file changed: primary key %s, older keys: %s",
            self.key_id,
            ", ".join(self.key_ids[1:]) or "none",
        )
        return True


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
        raise ConfigurationError("a stored secret is not in a format this server knows")
    return parts[0], parts[1], parts[2]


def load_keybox(
    *,
    secret_key: str | None,
    key_file: Path,
    create: bool,
    previous_keys: Sequence[str] = (),
) -> KeyBox | None:
    """The key ring from the environment or the key file.

    With ``create`` a missing key file is written (0600); without it a missing key gives None,
    and the caller decides whether that is an error (it is when encrypted rows exist).
    """
    if secret_key:
        older = [
            decode_key(key, f"UMP_PREVIOUS_SECRET_KEYS (item {number})")
            for number, key in enumerate(previous_keys, 1)
        ]
        return KeyBox(decode_key(secret_key, "UMP_SECRET_KEY"), *older)
    if previous_keys:
        raise ConfigurationError(
            "UMP_PREVIOUS_SECRET_KEYS goes with UMP_SECRET_KEY; with the key file, older keys "
            f"are the lines after the first in {key_file}"
        )
    keys = KeyFile(key_file)
    if key_file.exists():
        return KeyBox.following(keys)
    if not create:
        return None
    keys.create()
    return KeyBox.following(keys)
