"""The constrained field types connections (and the schemas beside them) are made of: each one
carries its own limits and checks, so a schema is a list of names.

Only pydantic here: no database, no HTTP.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints

from ump_llm_connections.domain.endpoints import check_headers, http_url
from ump_llm_connections.domain.input import (
    Integer,
    Number,
    Secret,
    SingleLine,
    TextBlock,
    header_value,
)
from ump_llm_connections.domain.secret import SecretRules, SecretText

__all__ = [
    "ApiKey",
    "AwsAccessKeyId",
    "AwsRegion",
    "BaseUrl",
    "Cost",
    "Description",
    "HeaderName",
    "HeaderValue",
    "Headers",
    "Limit",
    "MaxTokens",
    "ModelName",
    "Priority",
    "Retries",
    "ShortText",
    "Tag",
    "Tags",
    "Temperature",
    "Timeout",
    "UtcDateTime",
    "Weight",
]


def _check_base_url(value: str) -> str:
    value = value.strip()
    parts = http_url(value, "base_url", credentials="put the key in api_key")
    if parts.query or parts.fragment:
        raise ValueError("base_url must not have a query string or fragment")
    return value.rstrip("/")


def _check_tags(tags: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for tag in tags:
        seen.setdefault(tag, None)
    return list(seen)


def _as_utc(value: datetime) -> datetime:
    # SQLite hands timestamps back without a zone; they are stored in UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


UtcDateTime = Annotated[datetime, AfterValidator(_as_utc)]
ModelName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300), SingleLine
]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200), SingleLine]
Description = Annotated[str, StringConstraints(max_length=2000), TextBlock]
Tag = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64), SingleLine
]
HeaderName = Annotated[
    str, StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
]
# Every header value may be a credential (X-Auth-Token, Ocp-Apim-Subscription-Key…): sealed.
HeaderValue = Annotated[SecretText, SecretRules(max_length=2000, check=header_value)]
BaseUrl = Annotated[str, StringConstraints(max_length=2000), AfterValidator(_check_base_url)]
ApiKey = Secret
Tags = Annotated[list[Tag], Field(max_length=50), AfterValidator(_check_tags)]
Headers = Annotated[
    dict[HeaderName, HeaderValue], Field(max_length=50), AfterValidator(check_headers)
]
Timeout = Annotated[Number, Field(gt=0, le=3600)]
Retries = Annotated[Integer, Field(ge=0, le=10)]
Temperature = Annotated[Number, Field(ge=0, le=2)]
MaxTokens = Annotated[Integer, Field(ge=1, le=2_000_000)]
Priority = Annotated[Integer, Field(ge=-1000, le=1000)]
Weight = Annotated[Integer, Field(ge=0, le=10_000)]
Limit = Annotated[Integer, Field(ge=1, le=100_000_000)]
Cost = Annotated[Number, Field(ge=0, le=100_000)]
# AWS region names (us-east-1, us-gov-west-1, ap-southeast-2 …): they become a host name.
AwsRegion = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, max_length=50, pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$"
    ),
]
# An access key id (AKIA…, ASIA…) is an identifier, not a secret: the secret key is api_key.
AwsAccessKeyId = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Z0-9]{16,128}$")
]
