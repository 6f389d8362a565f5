"""A secret value by construction: provider keys, header values, webhook secrets, tokens.

``SecretText`` holds a string that nothing renders: ``repr``, ``str``, ``format`` and logging
show ``**********``; pydantic's JSON (``model_dump_json``, ``model_dump(mode="json")``, FastAPI's
responses) writes ``**********``; ``model_dump()`` keeps the ``SecretText`` itself, so a copy into
another model stays sealed; ``json``, ``orjson`` and ``pickle`` refuse it. The plaintext comes out
through one method, ``reveal()``, called where a key is encrypted or put on the wire.

pydantic's ``SecretStr`` comes close but pickles its plaintext, and a value that fails its
rules is echoed in the ``input`` of the validation error. Here a string is sealed first and the
rules (``SecretRules``) run on the sealed value, so even a rejected secret is only ever the mask
in an error. Clients still send plain JSON strings: the API does not change.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn, Self

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, PydanticKnownError, core_schema

__all__ = ["SECRET_MASK", "SecretRules", "SecretText"]

SECRET_MASK = "**********"  # noqa: S105 - what a secret shows, not one


class SecretText:
    """A string shown only as ``**********``; ``reveal()`` is the one way to its plaintext."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"SecretText holds a str, not {type(value).__name__}")
        self._value = value

    def reveal(self) -> str:
        """The plaintext: for encrypting it or putting it on the wire, nothing else."""
        return self._value

    def __repr__(self) -> str:
        return f"SecretText('{SECRET_MASK}')"

    def __str__(self) -> str:
        return SECRET_MASK

    def __format__(self, spec: str) -> str:
        return format(SECRET_MASK, spec)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SecretText):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(self._value)

    def __copy__(self) -> Self:
        return self  # immutable

    def __deepcopy__(self, memo: dict[int, Any]) -> Self:
        return self

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError("a SecretText is not pickled: reveal() it on purpose, or keep it here")

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return _schema(None)

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return dict(_JSON_SCHEMA)


_JSON_SCHEMA: JsonSchemaValue = {"type": "string", "format": "password", "writeOnly": True}


def _schema(rules: SecretRules | None) -> core_schema.CoreSchema:
    """Seal first, then check: an error's ``input`` is what its validator received, so the
    rules must receive the sealed value, never the string."""
    sealed: core_schema.CoreSchema = core_schema.is_instance_schema(SecretText)
    if rules is not None:
        sealed = core_schema.no_info_after_validator_function(rules, sealed)
    return core_schema.no_info_before_validator_function(
        _sealed,
        sealed,
        serialization=core_schema.plain_serializer_function_ser_schema(_masked, when_used="json"),
    )


def _sealed(value: Any) -> SecretText:
    """Seal a string before any rule sees it; anything else is not a string (and no secret)."""
    if isinstance(value, SecretText):
        return value
    if isinstance(value, str):
        return SecretText(value)
    raise PydanticCustomError("string_type", "Input should be a valid string")


def _masked(_: SecretText) -> str:
    return SECRET_MASK


@dataclass(frozen=True, slots=True)
class SecretRules:
    """The rules of one kind of secret, as ``Annotated[SecretText, SecretRules(...)]``.

    ``strip`` removes surrounding whitespace first; ``check`` takes the plaintext and raises
    ``ValueError`` with a message that must not quote it. The error's ``input`` is the sealed
    value, so a rejected secret is never echoed. The lengths show in the JSON schema.
    """

    min_length: int = 0
    max_length: int | None = None
    strip: bool = False
    check: Callable[[str], str] | None = None

    def __call__(self, value: SecretText) -> SecretText:
        text = value.reveal()
        if self.strip:
            text = text.strip()
        if len(text) < self.min_length:
            raise PydanticKnownError("string_too_short", {"min_length": self.min_length})
        if self.max_length is not None and len(text) > self.max_length:
            raise PydanticKnownError("string_too_long", {"max_length": self.max_length})
        if self.check is not None:
            self.check(text)
        return value if text is value.reveal() else SecretText(text)

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return _schema(self)

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        found = dict(_JSON_SCHEMA)
        if self.min_length:
            found["minLength"] = self.min_length
        if self.max_length is not None:
            found["maxLength"] = self.max_length
        return found
