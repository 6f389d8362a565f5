"""A connection's secrets at rest: its API key and every ``extra_headers`` value.

Each is encrypted with the server key ring (``secrets.KeyBox``) under the connection's id as
context, shown only as a mask, and opened only into a ``Target`` for an adapter, sealed in
``SecretText``. Values stored in plain text by older versions are still read (and encrypted at
start by the registry). Used by the registry alone.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping

from ump_llm_connections.domain import ConnectionCreate, SecretText, mask_key, mask_value
from ump_llm_connections.errors import ConfigurationError
from ump_llm_connections.providers.target import Target
from ump_llm_connections.secrets import KeyBox, is_encrypted
from ump_llm_connections.store.tables import ConnectionRow

__all__ = ["Sealer"]


class Sealer:
    def __init__(self, keys: KeyBox | None, *, max_upstream_bytes: int) -> None:
        self._keys = keys
        self._max_upstream_bytes = max_upstream_bytes  # what its targets may read of an answer

    def check(self, stored: Iterable[str]) -> None:
        """Refuse to run with a server key ring that cannot read keys stored under these ids."""
        wanted = set(stored)
        if not wanted:
            return
        if self._keys is None:
            raise ConfigurationError(
                "the database holds encrypted API keys, header values or webhook secrets but no "
                "server key was "
                "found: set UMP_SECRET_KEY or restore the key file ($UMP_DATA_DIR/secret.key) "
                "used before"
            )
        foreign = sorted(wanted - set(self._keys.key_ids))
        if foreign:
            raise ConfigurationError(
                "the database holds API keys, header values or webhook secrets encrypted with "
                "server key "
                f"{', '.join(foreign)}, but this server's keys are "
                f"{', '.join(self._keys.key_ids)}: set UMP_SECRET_KEY (or the key file) to the "
                "key used when they were saved (older keys: UMP_PREVIOUS_SECRET_KEYS beside "
                "UMP_SECRET_KEY, or the key file's later lines)"
            )

    def set_key(self, row: ConnectionRow, key: SecretText) -> None:
        if self._keys is None:
            raise ConfigurationError("no server key is loaded: API keys cannot be stored")
        row.api_key_encrypted = self._keys.encrypt(key.reveal(), context=str(row.id))
        row.api_key_mask = mask_key(key.reveal())

    def seal_headers(
        self, connection_id: uuid.UUID, headers: Mapping[str, SecretText]
    ) -> dict[str, str]:
        if not headers:
            return {}
        if self._keys is None:
            raise ConfigurationError("no server key is loaded: header values cannot be stored")
        context = str(connection_id)
        return {
            name: self._keys.encrypt(value.reveal(), context=context)
            for name, value in headers.items()
        }

    def open_headers(
        self, connection_id: uuid.UUID, headers: dict[str, str]
    ) -> dict[str, SecretText]:
        """Header values decrypted, and sealed (those stored before encryption are plain)."""
        if not headers:
            return {}
        opened = {}
        for name, value in headers.items():
            if is_encrypted(value):
                if self._keys is None:
                    raise ConfigurationError("no server key is loaded: headers cannot be read")
                value = self._keys.decrypt(value, context=str(connection_id))
            opened[name] = SecretText(value)
        return opened

    def mask(self, connection_id: uuid.UUID, stored: str) -> str:
        """A stored header value as the API shows it."""
        if not is_encrypted(stored):
            return mask_value(stored)
        if self._keys is None:
            return "…"
        try:
            return mask_value(self._keys.decrypt(stored, context=str(connection_id)))
        except ConfigurationError:  # the start-up check names the key; a read still answers
            return "…"

    def target_of(self, row: ConnectionRow) -> Target:
        """Where to reach a stored connection, its key and headers opened."""
        key = None
        if row.api_key_encrypted is not None:
            if self._keys is None:
                raise ConfigurationError("no server key is loaded: API keys cannot be read")
            key = SecretText(self._keys.decrypt(row.api_key_encrypted, context=str(row.id)))
        return self._target(row, key, self.open_headers(row.id, row.extra_headers))

    def edited_target(
        self, row: ConnectionRow, edited: ConnectionCreate, sent: set[str], key: SecretText | None
    ) -> Target:
        """Where ``row`` would reach once edited: with its stored key unless the edit sends
        one (``key``, None to drop it)."""
        stored = None if "api_key" in sent else self.target_of(row).api_key
        return self._target(edited, key if "api_key" in sent else stored, edited.extra_headers)

    def unsaved_target(self, data: ConnectionCreate) -> Target:
        """Where to reach a configuration that is not saved."""
        return self._target(data, data.api_key, data.extra_headers)

    def _target(
        self,
        source: ConnectionRow | ConnectionCreate,
        key: SecretText | None,
        headers: Mapping[str, SecretText],
    ) -> Target:
        return Target(
            api_format=str(source.api_format),
            base_url=str(source.base_url),
            model=str(source.model_name),
            api_key=key,
            timeout=float(source.timeout or 60),
            max_retries=int(source.max_retries if source.max_retries is not None else 2),
            organization_id=source.organization_id,
            api_version=source.api_version,
            deployment=source.deployment,
            extra_headers=headers,
            max_response_bytes=self._max_upstream_bytes,
            aws_region=source.aws_region,
            aws_access_key_id=source.aws_access_key_id,
        )
