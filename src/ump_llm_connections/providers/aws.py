"""AWS credentials and SigV4 signing, for the Bedrock adapter.

botocore is loaded here only, on the first call that needs it, in a thread (importing it takes a
while): ``import ump_llm_connections`` and a server that never calls Bedrock never load it.

A connection's credentials are its own (``aws_access_key_id`` with the secret access key in its
encrypted ``api_key``) or, without them, the standard botocore chain of the server's process
(environment, shared config and credentials files, container or instance role). The chain is
read in a thread, kept in memory only, and read again in a thread when botocore says the
credentials are due for a refresh (minutes before they expire); it is never stored.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ump_llm_connections.domain.secret import SecretText
from ump_llm_connections.providers.errors import ErrorKind, ProviderError

__all__ = ["AwsCredentials", "credentials_for", "load_botocore", "sign"]

SERVICE = "bedrock"  # the signing name of Bedrock's runtime and control plane alike
NO_CREDENTIALS = (
    "no AWS credentials: set aws_access_key_id and the secret access key (api_key) on the "
    "connection, or give the server AWS credentials (AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or an instance or container role)"
)


@dataclass(frozen=True, slots=True)
class AwsCredentials:
    """One set of AWS credentials; the secret parts sealed until ``sign`` reveals them."""

    access_key_id: str
    secret_access_key: SecretText
    session_token: SecretText | None = None


class _Chain:
    """The process's credential chain, resolved once and refreshed when botocore says so."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._source: Any = None  # botocore's Credentials (refreshable ones refresh themselves)
        self._current: AwsCredentials | None = None

    def cached(self) -> AwsCredentials | None:
        """The credentials when no refresh is due (a check of the clock, no I/O)."""
        source, current = self._source, self._current
        if current is None:
            return None
        refresh_needed = getattr(source, "refresh_needed", None)
        if refresh_needed is not None and refresh_needed():
            return None
        return current

    def resolve(self) -> AwsCredentials | None:
        """Blocking: read the chain (the first time) and freeze the credentials, refreshing
        them if they are due. Run in a thread."""
        import botocore.session

        with self._lock:
            if self._source is None:
                self._source = botocore.session.get_session().get_credentials()
                if self._source is None:
                    return None  # read again next time: the chain may be set up meanwhile
            frozen = self._source.get_frozen_credentials()
            self._current = AwsCredentials(
                frozen.access_key,
                SecretText(frozen.secret_key),
                SecretText(frozen.token) if frozen.token else None,
            )
            return self._current


_chain = _Chain()
_loaded = False


async def load_botocore() -> None:
    """Import what signing and event-stream decoding need, once, off the event loop."""
    global _loaded
    if not _loaded:
        await asyncio.to_thread(_import)
        _loaded = True


def _import() -> None:
    import botocore.auth
    import botocore.awsrequest
    import botocore.credentials
    import botocore.eventstream
    import botocore.session  # noqa: F401


async def credentials_for(access_key_id: str | None, secret: SecretText | None) -> AwsCredentials:
    """The connection's own credentials, or the chain's."""
    await load_botocore()
    if access_key_id and secret:
        return AwsCredentials(access_key_id, secret)
    found = _chain.cached()
    if found is not None:
        return found
    try:
        found = await asyncio.to_thread(_chain.resolve)
    except Exception as exc:  # botocore's many errors of a broken profile, role or file
        raise ProviderError(
            ErrorKind.auth,
            f"the server's AWS credentials could not be read ({type(exc).__name__}): "
            "check its AWS profile, config files or role, or set aws_access_key_id and the "
            "secret access key (api_key) on the connection",
        ) from None
    if found is None:
        raise ProviderError(ErrorKind.auth, NO_CREDENTIALS)
    return found


def sign(
    method: str,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    region: str,
    credentials: AwsCredentials,
) -> dict[str, str]:
    """``headers`` with SigV4's (``Authorization``, ``X-Amz-Date``, and
    ``X-Amz-Security-Token`` for temporary credentials) for exactly this request: ``url`` as it
    is sent (already percent-encoded) and these body bytes. Needs ``load_botocore`` first."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import ReadOnlyCredentials

    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
    token = credentials.session_token.reveal() if credentials.session_token else None
    SigV4Auth(
        ReadOnlyCredentials(
            credentials.access_key_id, credentials.secret_access_key.reveal(), token
        ),
        SERVICE,
        region,
    ).add_auth(request)
    return dict(request.headers.items())
