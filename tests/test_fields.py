"""A connection's fields, where they are restated: a field added to the domain's
``ConnectionFields`` and not to the table, the read model, the CLI or the registry fails here.
The differences allowed are listed, each with its reason."""

from __future__ import annotations

import dataclasses

import typer.main

from ump_llm_connections.cli import app
from ump_llm_connections.cli.connections import HAND_WRITTEN, NOT_ON_CLI, PLAIN_OPTIONS
from ump_llm_connections.domain import (
    ConnectionCreate,
    ConnectionFields,
    ConnectionRead,
    ConnectionUpdate,
    Source,
)
from ump_llm_connections.gateway.directory import Route
from ump_llm_connections.registry import PLAIN_FIELDS
from ump_llm_connections.store.tables import ConnectionRow

WRITABLE = set(ConnectionFields.model_fields)
# Kept by the server, never written by a caller.
SERVER_KEPT = {
    "id",
    "status",
    "last_error",
    "consecutive_failures",
    "deactivated_by_health",
    "created_at",
    "updated_at",
    "last_used_at",
    "last_tested_at",
}


def test_create_and_update_take_the_same_fields() -> None:
    assert set(ConnectionCreate.model_fields) == WRITABLE
    assert set(ConnectionUpdate.model_fields) == WRITABLE


def test_the_table_has_a_column_for_each_field() -> None:
    columns = {c.name for c in ConnectionRow.__table__.columns}
    # api_key is stored encrypted, with a mask to show.
    assert columns == (WRITABLE - {"api_key"}) | {"api_key_encrypted", "api_key_mask"} | SERVER_KEPT


def test_the_read_model_shows_each_field_but_the_key() -> None:
    # api_key is write-only: it reads back as whether there is one, and its mask.
    expected = (WRITABLE - {"api_key"}) | {"has_api_key", "api_key_mask"} | SERVER_KEPT
    assert set(ConnectionRead.model_fields) == expected


def test_the_registry_copies_every_plain_field() -> None:
    assert set(PLAIN_FIELDS) == WRITABLE - {"api_key"}


def test_the_cli_takes_every_field_but_the_listed_ones() -> None:
    assert not set(HAND_WRITTEN) & set(NOT_ON_CLI)
    assert set(HAND_WRITTEN) | set(NOT_ON_CLI) | set(PLAIN_OPTIONS) == WRITABLE
    group = typer.main.get_group(app)
    add = group.commands["connections"].commands["add"]  # type: ignore[attr-defined]
    options = {opt for param in add.params for opt in param.opts}
    for name in PLAIN_OPTIONS:
        assert "--" + name.replace("_", "-") in options, name
    for name, spelled in HAND_WRITTEN.items():
        assert {o.strip() for o in spelled.split("/")} <= options, name


def test_each_flagged_source_has_its_use_in_field() -> None:
    flags = {s.flag for s in Source if s.flag}
    assert flags == {f for f in WRITABLE if f.startswith("use_in_")}


def test_the_gateway_route_copies_only_real_fields() -> None:
    derived = {"uses", "adapter", "prices"}  # built from the flags, the target and the costs
    copied = {f.name for f in dataclasses.fields(Route)} - derived
    assert copied <= set(ConnectionRead.model_fields)
