"""``ump-llm rotate-key``: every stored provider key, header value and webhook secret
re-encrypted under a new server key while the servers keep serving.

With the key file, the new key goes in as its first line (the primary), the old ones stay after
it (decrypt only), and running servers pick it up without a restart. With ``UMP_SECRET_KEY``
this edits no file: the rows move to that key, and the procedure below says how to get there.
Progress goes to stderr; a run that was interrupted is finished by the next one.
"""

from __future__ import annotations

import os
import time
from typing import Annotated

import typer

from ump_llm_connections.cli.common import (
    DatabaseUrl,
    audited,
    connections_settings,
    fail,
    with_service,
)
from ump_llm_connections.config import Settings
from ump_llm_connections.domain.audit import AuditAction, AuditTarget, TargetType
from ump_llm_connections.errors import ConfigurationError
from ump_llm_connections.rotation import BATCH_SIZE, KeyRotation, Rotated
from ump_llm_connections.secrets import KeyBox, KeyFile, Signature, decode_key, key_id_for
from ump_llm_connections.service import Service
from ump_llm_connections.store.rotation import RotationStore

__all__ = ["ENV_PROCEDURE", "rotate_key"]

ENV_PROCEDURE = """\
UMP_SECRET_KEY is set, so the servers' keys live in their environment and this command edits
no file. To rotate to a new key:
  1. ump-llm generate-key                                   (the new key: keep it secret)
  2. several servers: restart each with UMP_PREVIOUS_SECRET_KEYS=<new>, UMP_SECRET_KEY unchanged
     (all of them can then read rows written under the new key)
  3. restart each with UMP_SECRET_KEY=<new> UMP_PREVIOUS_SECRET_KEYS=<old>
  4. ump-llm rotate-key        (same environment as step 3: rewrites every row under <new>)
  5. ump-llm rotate-key --drop-old   (checks no row needs <old>), then restart each server
     without UMP_PREVIOUS_SECRET_KEYS"""

_PROGRESS_EVERY_S = 0.5
# Servers look at the key file before each encryption; a write one began under the old key just
# before the change has this long to land before the last scan for rows left behind.
_SETTLE_S = 1.0


def rotate_key(
    new_key: Annotated[
        str | None,
        typer.Option(
            "--new-key",
            help="The new server key (url-safe base64 of 32 bytes; default: a fresh one).",
            show_default=False,
        ),
    ] = None,
    drop_old: Annotated[
        bool,
        typer.Option("--drop-old", help="Remove the older keys, once no row uses them."),
    ] = False,
    batch_size: Annotated[
        int, typer.Option(min=1, max=10_000, help="Rows rewritten per committed transaction.")
    ] = BATCH_SIZE,
    database_url: DatabaseUrl = None,
) -> None:
    """Re-encrypt every stored secret under a new server key, with the servers running."""
    if new_key is not None and drop_old:
        raise fail("--new-key and --drop-old go in separate runs", 2)
    new = None if new_key is None else _decoded(new_key)
    settings = connections_settings(database_url)
    if settings.secret_key:
        _from_environment(settings, new, drop_old=drop_old, batch_size=batch_size)
    elif drop_old:
        _drop_old(settings)
    else:
        _rotate_key_file(settings, new, batch_size=batch_size)


def _decoded(text: str) -> bytes:
    try:
        return decode_key(text, "--new-key")
    except ConfigurationError as exc:
        raise typer.BadParameter(exc.message, param_hint="--new-key") from None


def _rotate_key_file(settings: Settings, new: bytes | None, *, batch_size: int) -> None:
    key_file = KeyFile(settings.key_file)
    if not key_file.path.exists():
        raise fail(f"no key file at {key_file.path}: is UMP_DATA_DIR the server's?", 2)
    seen, keys = _load(key_file)
    primary = key_id_for(keys[0])
    if len(keys) > 1 and new is not None and key_id_for(new) != primary:
        raise fail(
            f"the key file still holds the older keys of the rotation to key {primary}: "
            "finish that with `ump-llm rotate-key` (if it was interrupted) and "
            "`ump-llm rotate-key --drop-old`, then rotate again",
            2,
        )
    adding = len(keys) == 1
    if adding:
        new = new or os.urandom(32)
        if key_id_for(new) == primary:
            raise fail(f"--new-key is already the server key ({primary})", 2)

    async def work(service: Service) -> Rotated:
        # The service opened with the old keys and found them fitting the rows; only then
        # does the key file change.
        if adding and new is not None:
            if key_file.signature() != seen:
                raise ConfigurationError("the key file changed meanwhile: run this again")
            key_file.write([new, *keys])
            typer.echo(f"key file {key_file.path}: new primary key {key_id_for(new)}", err=True)
        else:
            typer.echo(f"finishing the rotation to key {primary}", err=True)
        ring = KeyBox.following(key_file)
        rotation = KeyRotation(RotationStore(service.sessions), ring, batch_size=batch_size)
        done = await rotation.run(_Progress(), settle_s=_SETTLE_S if adding else 0.0)
        await _audit(service, done)
        return done

    done = with_service(settings, work)
    typer.echo(_summary(done))
    typer.echo(
        "the key file keeps the older keys (decrypt only) until `ump-llm rotate-key "
        "--drop-old`; keep a copy of them while you keep database backups made before now",
        err=True,
    )


async def _audit(service: Service, done: Rotated) -> None:
    """The rotation in the audit log, when it rewrote rows: the new key's id (public, a hash
    prefix), never a key."""
    if done.rows:
        target = AuditTarget(TargetType.server_key, done.key_id, f"{done.rows} rows re-encrypted")
        await audited(service, AuditAction.key_rotate, target)


def _drop_old(settings: Settings) -> None:
    key_file = KeyFile(settings.key_file)
    if not key_file.path.exists():
        raise fail(f"no key file at {key_file.path}: is UMP_DATA_DIR the server's?", 2)
    seen, keys = _load(key_file)
    if len(keys) == 1:
        typer.echo(f"nothing to drop: the key file holds only the server key {key_id_for(keys[0])}")
        return

    async def work(service: Service) -> None:
        rotation = KeyRotation(RotationStore(service.sessions), KeyBox.following(key_file))
        _refuse_if_behind(await rotation.behind())
        if key_file.signature() != seen:
            raise ConfigurationError("the key file changed meanwhile: run this again")
        key_file.write(keys[:1])

    with_service(settings, work)
    dropped = ", ".join(key_id_for(key) for key in keys[1:])
    typer.echo(f"dropped key {dropped}: the key file holds only {key_id_for(keys[0])}")


def _from_environment(
    settings: Settings, new: bytes | None, *, drop_old: bool, batch_size: int
) -> None:
    assert settings.secret_key is not None
    primary = key_id_for(decode_key(settings.secret_key, "UMP_SECRET_KEY"))
    if new is not None and key_id_for(new) != primary:
        typer.echo(ENV_PROCEDURE, err=True)
        raise fail(f"--new-key must be UMP_SECRET_KEY ({primary}) when that is set", 2)

    async def check(service: Service) -> None:
        _refuse_if_behind(await KeyRotation(RotationStore(service.sessions), service.keys).behind())

    if drop_old:
        with_service(settings, check)
        if settings.previous_secret_keys:
            typer.echo(
                f"no row needs a key but {primary}: remove UMP_PREVIOUS_SECRET_KEYS from every "
                "server's environment (and restart it)"
            )
        else:
            typer.echo("nothing to drop: UMP_PREVIOUS_SECRET_KEYS is not set")
        return

    async def work(service: Service) -> Rotated:
        rotation = KeyRotation(RotationStore(service.sessions), service.keys, batch_size=batch_size)
        done = await rotation.run(_Progress())
        await _audit(service, done)
        return done

    done = with_service(settings, work)
    if done.rows == 0 and not settings.previous_secret_keys:
        typer.echo(f"every row is on UMP_SECRET_KEY ({primary}) already", err=True)
        typer.echo(ENV_PROCEDURE, err=True)
        return
    typer.echo(_summary(done))
    if settings.previous_secret_keys:
        typer.echo("next: ump-llm rotate-key --drop-old", err=True)


def _load(key_file: KeyFile) -> tuple[Signature | None, list[bytes]]:
    try:
        return key_file.load()
    except ConfigurationError as exc:
        raise fail(exc.message, 2) from None


def _refuse_if_behind(behind: dict[str, int]) -> None:
    if behind:
        rows = ", ".join(f"{count} under key {key_id}" for key_id, count in sorted(behind.items()))
        raise ConfigurationError(
            f"rows still use an older key ({rows}): run `ump-llm rotate-key` to finish the "
            "rotation first"
        )


def _summary(done: Rotated) -> str:
    return (
        f"re-encrypted {done.rows} rows under key {done.key_id} "
        f"({done.connections} connections, {done.webhooks} webhooks); no row uses another key"
    )


class _Progress:
    """``rows done/total`` on stderr, at most every ``_PROGRESS_EVERY_S`` and at the end."""

    def __init__(self) -> None:
        self._last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done == total or now - self._last >= _PROGRESS_EVERY_S:
            self._last = now
            typer.echo(f"re-encrypted {done}/{total} rows", err=True)
