"""What a health check does to its connection: the state machine, as one pure function.

Every check clears or sets the error; ``rate_limited`` is load, not death: nothing changes. A
probe that could not be built (``PROBE_ERROR``) is bad local configuration: it sets the error
and counts for nothing. Other failures count up and put an active connection in ``error``.
With ``enforce`` (the monitor, not a person's test), ``auth`` and ``not_found`` are definite and
reach the threshold at once; at the threshold the connection is deactivated, and a later
success brings it back if ``auto_reactivate`` is set. A person's deactivation is never undone.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from ump_llm_connections.domain.enums import ConnectionStatus, ErrorKind

__all__ = ["DEFINITE", "PROBE_ERROR", "Failure", "HealthState", "Transition", "after_check"]

PROBE_ERROR: Literal["probe_error"] = "probe_error"  # a check's error_kind when nothing was sent
DEFINITE = frozenset({ErrorKind.auth, ErrorKind.not_found})

Failure = ErrorKind | Literal["probe_error"]


@dataclass(frozen=True)
class HealthState:
    """The part of a connection a check may change, and what decides how."""

    is_active: bool
    status: ConnectionStatus
    deactivated_by_health: bool
    auto_reactivate: bool
    consecutive_failures: int
    last_error: str | None


@dataclass(frozen=True)
class Transition:
    """The state after a check, and whether the check switched the connection off or on."""

    state: HealthState
    deactivated: bool = False
    reactivated: bool = False


def after_check(
    state: HealthState,
    failure: Failure | None,
    error: str | None = None,
    *,
    threshold: int,
    enforce: bool,
) -> Transition:
    """The connection's state after a check that succeeded (``failure`` None) or failed with
    ``failure`` and the message ``error``."""
    if failure is None:
        back = not state.is_active and state.deactivated_by_health and state.auto_reactivate
        active = state.is_active or back
        return Transition(
            replace(
                state,
                consecutive_failures=0,
                last_error=None,
                is_active=active,
                deactivated_by_health=state.deactivated_by_health and not back,
                status=ConnectionStatus.active if active else state.status,
            ),
            reactivated=back,
        )
    if failure == ErrorKind.rate_limited:
        return Transition(state)
    if failure == PROBE_ERROR:
        return Transition(replace(state, last_error=error))
    failures = state.consecutive_failures + 1
    if enforce and failure in DEFINITE:
        failures = max(failures, threshold)
    after = replace(state, last_error=error, consecutive_failures=failures)
    if not state.is_active:
        return Transition(after)
    off = enforce and failures >= threshold
    return Transition(
        replace(
            after,
            status=ConnectionStatus.error,
            is_active=not off,
            deactivated_by_health=state.deactivated_by_health or off,
        ),
        deactivated=off,
    )
