"""The health state machine as a table: a state, a check, the state after it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ump_llm_connections.domain import (
    PROBE_ERROR,
    ConnectionStatus,
    ErrorKind,
    Failure,
    HealthState,
    after_check,
)

S = ConnectionStatus
THRESHOLD = 3

ON = HealthState(
    is_active=True,
    status=S.active,
    deactivated_by_health=False,
    auto_reactivate=False,
    consecutive_failures=0,
    last_error=None,
)
FAILING = replace(ON, status=S.error, consecutive_failures=2, last_error="boom")
OFF_BY_HEALTH = replace(
    FAILING, is_active=False, deactivated_by_health=True, consecutive_failures=3
)
OFF_BY_HEALTH_AUTO = replace(OFF_BY_HEALTH, auto_reactivate=True)
OFF_BY_PERSON = replace(ON, is_active=False, status=S.inactive, auto_reactivate=True)

# (name, before, failure, enforce, after, deactivated, reactivated)
CASES: list[tuple[str, HealthState, Failure | None, bool, HealthState, bool, bool]] = [
    ("success keeps healthy", ON, None, True, ON, False, False),
    (
        "success clears the count and the error",
        FAILING,
        None,
        True,
        replace(FAILING, status=S.active, consecutive_failures=0, last_error=None),
        False,
        False,
    ),
    (
        "success leaves a health deactivation without auto_reactivate",
        OFF_BY_HEALTH,
        None,
        True,
        replace(OFF_BY_HEALTH, consecutive_failures=0, last_error=None),
        False,
        False,
    ),
    (
        "success brings back a health deactivation with auto_reactivate",
        OFF_BY_HEALTH_AUTO,
        None,
        True,
        replace(
            OFF_BY_HEALTH_AUTO,
            is_active=True,
            deactivated_by_health=False,
            status=S.active,
            consecutive_failures=0,
            last_error=None,
        ),
        False,
        True,
    ),
    (
        "success never undoes a person's deactivation",
        OFF_BY_PERSON,
        None,
        True,
        OFF_BY_PERSON,
        False,
        False,
    ),
    ("rate limited changes nothing", FAILING, ErrorKind.rate_limited, True, FAILING, False, False),
    (
        "a probe error sets the error and counts for nothing",
        ON,
        PROBE_ERROR,
        True,
        replace(ON, last_error="boom"),
        False,
        False,
    ),
    (
        "a failure counts up and marks error",
        ON,
        ErrorKind.timeout,
        True,
        replace(ON, status=S.error, consecutive_failures=1, last_error="boom"),
        False,
        False,
    ),
    (
        "the threshold deactivates when enforced",
        FAILING,
        ErrorKind.server_error,
        True,
        replace(FAILING, is_active=False, deactivated_by_health=True, consecutive_failures=3),
        True,
        False,
    ),
    (
        "the threshold only counts in a person's test",
        FAILING,
        ErrorKind.server_error,
        False,
        replace(FAILING, consecutive_failures=3),
        False,
        False,
    ),
    (
        "auth is definite when enforced",
        ON,
        ErrorKind.auth,
        True,
        replace(
            ON,
            status=S.error,
            is_active=False,
            deactivated_by_health=True,
            consecutive_failures=THRESHOLD,
            last_error="boom",
        ),
        True,
        False,
    ),
    (
        "not_found is definite when enforced",
        ON,
        ErrorKind.not_found,
        True,
        replace(
            ON,
            status=S.error,
            is_active=False,
            deactivated_by_health=True,
            consecutive_failures=THRESHOLD,
            last_error="boom",
        ),
        True,
        False,
    ),
    (
        "auth in a person's test counts one",
        ON,
        ErrorKind.auth,
        False,
        replace(ON, status=S.error, consecutive_failures=1, last_error="boom"),
        False,
        False,
    ),
    (
        "an inactive connection counts but keeps its status",
        OFF_BY_PERSON,
        ErrorKind.unreachable,
        True,
        replace(OFF_BY_PERSON, consecutive_failures=1, last_error="boom"),
        False,
        False,
    ),
    (
        "a health-deactivated connection is not deactivated twice",
        OFF_BY_HEALTH,
        ErrorKind.auth,
        True,
        replace(OFF_BY_HEALTH, consecutive_failures=4),
        False,
        False,
    ),
]


@pytest.mark.parametrize(
    ("before", "failure", "enforce", "after", "deactivated", "reactivated"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_after_check(
    before: HealthState,
    failure: Failure | None,
    enforce: bool,
    after: HealthState,
    deactivated: bool,
    reactivated: bool,
) -> None:
    moved = after_check(before, failure, "boom", threshold=THRESHOLD, enforce=enforce)
    assert moved.state == after
    assert (moved.deactivated, moved.reactivated) == (deactivated, reactivated)


def test_every_error_kind_has_a_rule() -> None:
    """A new kind must be placed on purpose: it counts as a failure unless the rules say not."""
    counted = {
        kind
        for kind in ErrorKind
        if after_check(ON, kind, "x", threshold=THRESHOLD, enforce=False).state.consecutive_failures
    }
    assert set(ErrorKind) - counted == {ErrorKind.rate_limited}
