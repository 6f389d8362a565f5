"""Passive health: the gateway's own calls as health signals (Envoy's outlier detection).

A scheduled probe that lists models can pass while every chat call fails (a vLLM whose model
crashed, an Azure deployment that was removed). So the gateway counts, per connection, the
failures in a row of the kinds that say the upstream is broken; at ``threshold`` it reports the
connection once (``on_trip``) and starts counting again. A success resets the count. Rate limits
(load, not death), refused requests (the caller's fault) and closed clients do not count.

Pure in-process state: the report is a callback, and what it does (record a check, probe at
once) belongs to the health service.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from ump_llm_connections.providers.errors import ErrorKind, ProviderError

COUNTED = frozenset(
    {
        ErrorKind.auth,
        ErrorKind.not_found,
        ErrorKind.timeout,
        ErrorKind.unreachable,
        ErrorKind.bad_response,
        ErrorKind.server_error,
    }
)

Trip = Callable[[uuid.UUID, ProviderError], None]


class Outliers:
    def __init__(self, *, threshold: int = 3, on_trip: Trip | None = None) -> None:
        self.threshold = threshold
        self.on_trip = on_trip
        self._streaks: dict[uuid.UUID, int] = {}

    def success(self, connection_id: uuid.UUID) -> None:
        if self._streaks:  # the common case, nothing failing, costs one truth test
            self._streaks.pop(connection_id, None)

    def failure(self, connection_id: uuid.UUID, exc: ProviderError) -> None:
        if exc.kind not in COUNTED or self.on_trip is None:
            return
        streak = self._streaks.get(connection_id, 0) + 1
        if streak < self.threshold:
            self._streaks[connection_id] = streak
            return
        self._streaks.pop(connection_id, None)
        self.on_trip(connection_id, exc)
