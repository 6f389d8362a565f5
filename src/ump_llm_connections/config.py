"""Settings from the environment (``UMP_*``), gathered in one object."""

from __future__ import annotations

import ipaddress
import re
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
# A host name (any script), or "*." and a domain: what UMP_UPSTREAM_ALLOWLIST holds beside IPs.
_HOST_PATTERN = re.compile(r"(\*\.)?[\w-]+(\.[\w-]+)*\.?")


def is_loopback(host: str) -> bool:
    """Whether a bind address serves only this machine."""
    host = bind_address(host)
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind_address(host: str) -> str:
    """The address to bind, as sockets take it: an IPv6 literal loses its URL brackets."""
    host = host.strip()
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def normalise_database_url(url: str) -> str:
    """Accept the URLs people paste (``postgresql://``, ``sqlite:///``); use async drivers."""
    for plain, driver in (
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    return url


class Settings(BaseSettings):
    """Everything the server reads from its environment.

    ``UMP_DATA_DIR`` holds the SQLite file and the key file; ``UMP_DATABASE_URL`` overrides the
    database; ``UMP_SECRET_KEY`` overrides the key file.
    """

    model_config = SettingsConfigDict(env_prefix="UMP_", extra="ignore")

    data_dir: Path = Path("data")
    database_url: str | None = None
    secret_key: str | None = Field(default=None, repr=False)
    host: str = "127.0.0.1"
    port: int = Field(default=8002, ge=1, le=65535)
    log_level: str = "info"
    log_format: Literal["text", "json"] = "text"  # json: one object a line (logs.py)
    access_log: bool = False  # usage rows record every gateway call; a line per request is cost
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    max_upstream_bytes: int = Field(default=16 * 1_048_576, ge=1024)
    redis_url: str | None = Field(default=None, repr=False)
    redis_prefix: str = "ump:limits"
    health_monitor: bool = True
    health_interval_s: float = Field(default=300.0, ge=0.1, le=86_400)
    health_failure_threshold: int = Field(default=3, ge=1, le=100)
    health_concurrency: int = Field(default=8, ge=1, le=256)
    health_retention_days: float = Field(default=30.0, gt=0, le=3650)
    health_latency_threshold_ms: float | None = Field(default=None, gt=0)
    health_error_rate_threshold: float | None = Field(default=None, gt=0, le=1)
    gateway_refresh_s: float = Field(default=5.0, gt=0, le=3600)
    token_refresh_s: float | None = Field(default=None, gt=0, le=3600)  # default: the above
    usage_flush_s: float = Field(default=1.0, gt=0, le=1)  # at most this is lost on SIGKILL
    usage_spill_path: Path | None = None  # default: usage-spill.jsonl in the data dir
    shutdown_grace_s: int = Field(default=10, ge=0, le=3600)
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    webhook_backoff_s: float = Field(default=1.0, ge=0, le=3600)
    events_keepalive_s: float = Field(default=15.0, gt=0, le=3600)  # GET /api/events comments
    audit_retention_days: int = Field(default=365, ge=1, le=36_500)
    # Hosts members may name in a base_url or webhook url: names, *.suffix, IPs, CIDRs.
    upstream_allowlist: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Decrypt-only server keys beside UMP_SECRET_KEY, while a rotation rewrites the rows.
    previous_secret_keys: Annotated[list[str], NoDecode] = Field(default_factory=list, repr=False)
    # AWS spot instances (compute/): where instances send heartbeats, how often the reconciler
    # runs, how long a lease lasts, the regions it watches, how it builds an endpoint.
    public_url: str | None = None
    spot_reconcile_s: float = Field(default=30.0, ge=0.05, le=3600)
    spot_lease_s: float = Field(default=300.0, ge=1, le=86_400)
    spot_regions: Annotated[list[str], NoDecode] = Field(default_factory=list)
    spot_endpoint_template: str = "http://{public_ip}:{port}/v1"

    @field_validator(
        "allowed_hosts",
        "trusted_proxies",
        "upstream_allowlist",
        "previous_secret_keys",
        "spot_regions",
        mode="before",
    )
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [host.strip() for host in value.split(",") if host.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network (CIDR)") from None
        return value

    @field_validator("upstream_allowlist")
    @classmethod
    def _hosts_or_networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(bind_address(item), strict=False)
            except ValueError:
                if not _HOST_PATTERN.fullmatch(item.lower()):
                    raise ValueError(
                        f"{item!r} is not a host name, '*.' and a domain, an IP address or a "
                        "network (CIDR)"
                    ) from None
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip().rstrip("/")
        if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", value):
            raise ValueError("must be an http(s) URL such as https://ump.example.com")
        return value

    @field_validator("spot_endpoint_template")
    @classmethod
    def _endpoint_template(cls, value: str) -> str:
        try:
            url = value.format(public_ip="203.0.113.1", private_ip="10.0.0.1", port=8000)
        except (KeyError, IndexError, ValueError):
            raise ValueError(
                "may name only {public_ip}, {private_ip} and {port}, e.g. "
                "http://{public_ip}:{port}/v1"
            ) from None
        if not url.startswith(("http://", "https://")):
            raise ValueError("must give an http(s) URL, e.g. http://{public_ip}:{port}/v1")
        return value

    @property
    def auth_always(self) -> bool:
        """Bound to an address other machines reach: every request needs a token."""
        return not is_loopback(self.host)

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return normalise_database_url(self.database_url)
        return f"sqlite+aiosqlite:///{(self.data_dir / 'ump.db').resolve()}"

    @property
    def spill_file(self) -> Path:
        return self.usage_spill_path or self.data_dir / "usage-spill.jsonl"

    @property
    def key_file(self) -> Path:
        return self.data_dir / "secret.key"
