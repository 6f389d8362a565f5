"""The connection and pool events a webhook or an event stream may subscribe to (published by
the services' event bus)."""

from __future__ import annotations

__all__ = ["EVENT_TYPES"]

EVENT_TYPES = (
    "connection.created",
    "connection.updated",
    "connection.deleted",
    "connection.activated",
    "connection.deactivated",
    "connection.status_changed",
    "connection.test_failed",
    "connection.threshold_exceeded",
    "connection.budget_exceeded",
    "pool.created",
    "pool.updated",
    "pool.deleted",
)
