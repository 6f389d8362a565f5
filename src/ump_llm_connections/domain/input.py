"""Strict input: the base of every API body, the text rules, and one readable error from many.

Every body refuses unknown fields (suggesting the field meant), strings holding NUL characters
or unpaired surrogates (no database stores them), and values of the wrong JSON type: a bool is
``true``/``false``, never ``"yes"`` or ``1``; a number is never a string. Only pydantic here.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Annotated, Any, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    ValidatorFunctionWrapHandler,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError
from pydantic_core.core_schema import ErrorType

from ump_llm_connections.domain.secret import SecretRules, SecretText
from ump_llm_connections.errors import InvalidInput

__all__ = [
    "MAX_MESSAGES",
    "Body",
    "Flag",
    "Integer",
    "InvalidField",
    "Number",
    "Secret",
    "SingleLine",
    "TextBlock",
    "header_value",
    "invalid_input",
    "single_line",
]

_PYDANTIC_ERRORS = frozenset(get_args(ErrorType))
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")  # NUL and lone surrogates: no database takes them
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_CONTROL_IN_BLOCK = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # tab and newlines allowed
_CONTROL_IN_HEADER = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f]")  # tab allowed
_SPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")
MAX_MESSAGES = 10  # problems spelled out in one error message; the rest are counted


def single_line(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


def _text_block(value: str) -> str:
    if _CONTROL_IN_BLOCK.search(value):
        raise ValueError("must not contain control characters other than tabs and newlines")
    return value


def _secret(value: str) -> str:
    if _SPACE_OR_CONTROL.search(value):
        raise ValueError("must not contain spaces or control characters")
    return value


def header_value(value: str) -> str:
    if _CONTROL_IN_HEADER.search(value):
        raise ValueError("must not contain control characters (a header value is one line)")
    return value


# Metadata for Annotated[str, ...]: one line of text, or free text (a description).
SingleLine = AfterValidator(single_line)
TextBlock = AfterValidator(_text_block)
# A key or token: one word, sealed (``secret.py``), never echoed even when refused.
Secret = Annotated[
    SecretText, SecretRules(min_length=1, max_length=4096, strip=True, check=_secret)
]
Flag = Annotated[bool, Strict()]
Integer = Annotated[int, Strict()]
Number = Annotated[float, Strict(), Field(allow_inf_nan=False)]  # an int is a number too


class InvalidField(ValueError):
    """A model-level rule broken by one named field (pydantic reports it under that field)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class Body(BaseModel):
    """The base of every request body: unknown fields refused (with a suggestion), and no
    string anywhere in it that a database cannot store."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="wrap")
    @classmethod
    def _explain(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        problems = list(_unstorable(data, ()))
        try:
            value = handler(data)
        except ValidationError as exc:
            seen = {p["loc"] for p in problems}
            problems += [p for p in _explained(exc, cls) if p["loc"] not in seen]
        if problems:
            raise ValidationError.from_exception_data(cls.__name__, problems)
        return value


def _unstorable(data: Any, loc: tuple[str | int, ...]) -> Iterator[InitErrorDetails]:
    if isinstance(data, str):
        if _UNSTORABLE.search(data):
            message = "must not contain NUL characters or unpaired surrogates"
            yield {"type": PydanticCustomError("invalid_text", message), "loc": loc, "input": ""}
    elif isinstance(data, dict):
        for key, value in data.items():
            if isinstance(key, str) and _UNSTORABLE.search(key):
                message = "a field name must not contain NUL characters or unpaired surrogates"
                custom = PydanticCustomError("invalid_text", message)
                yield {"type": custom, "loc": (*loc, key), "input": ""}
            else:
                yield from _unstorable(value, (*loc, key))
    elif isinstance(data, list):
        for index, item in enumerate(data):
            yield from _unstorable(item, (*loc, index))


def _explained(exc: ValidationError, model: type[BaseModel]) -> Iterator[InitErrorDetails]:
    """pydantic's errors, an unknown field of this model turned into one that names the field
    it probably meant (pydantic's own error types kept, so their messages stay)."""
    for error in exc.errors():
        kind, loc = error["type"], error["loc"]
        details: InitErrorDetails
        if kind == "extra_forbidden" and len(loc) == 1:
            name = str(loc[0])
            close = difflib.get_close_matches(name, list(model.model_fields), n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            custom = PydanticCustomError("unknown_field", "unknown field{hint}", {"hint": hint})
            details = {"type": custom, "loc": loc, "input": ""}
        elif kind in _PYDANTIC_ERRORS:
            details = {"type": kind, "loc": loc, "input": error["input"]}
            if "ctx" in error:
                details["ctx"] = error["ctx"]
        else:  # a custom error from a nested body, its message already made
            details = {"type": PydanticCustomError(kind, error["msg"]), "loc": loc, "input": ""}
        yield details


def invalid_input(exc: ValidationError | Sequence[Mapping[str, Any]]) -> InvalidInput:
    """One readable error from pydantic's list: every problem named (unknown fields first),
    ``field`` the first of them.

    Input values are never echoed: a rejected value may be a secret.
    """
    errors = exc.errors() if isinstance(exc, ValidationError) else list(exc)
    errors = sorted(errors, key=lambda e: e.get("type") not in ("unknown_field", "extra_forbidden"))
    described = [_describe(error) for error in errors]
    field = described[0][0] if described else None
    messages = list(dict.fromkeys(message for _, message in described))
    message = "; ".join(messages[:MAX_MESSAGES]) or "invalid input"
    if len(messages) > MAX_MESSAGES:
        more = len(messages) - MAX_MESSAGES
        message += f" (and {more} more problem{'s' if more > 1 else ''})"
    return InvalidInput(message, field=field)


def _describe(error: Mapping[str, Any]) -> tuple[str | None, str]:
    loc = [str(part) for part in error.get("loc", ())]
    if loc and loc[0] in ("body", "query", "path", "header"):
        loc = loc[1:]
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, InvalidField):  # a rule of the whole model, naming its field
        loc.append(cause.field)
    field = ".".join(_shown(part) for part in loc) or None
    kind = error.get("type", "")
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    if kind in ("unknown_field", "extra_forbidden"):
        hint = message.removeprefix("unknown field").removeprefix("Extra inputs are not permitted")
        return field, f"unknown field '{field}'{hint}"
    if field is None:
        if kind == "missing":
            return None, "a JSON object is required as the body"
        if kind in ("model_type", "model_attributes_type", "dict_type"):
            return None, "the body must be a JSON object"
        return None, message
    if kind == "missing":
        return field, f"{field} is required"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return field, f"{field} must be a JSON object"
    return field, message if message.startswith(field) else f"{field}: {message}"


def _shown(part: str) -> str:
    """A field name as the error shows it: short, and only characters any JSON encoder takes."""
    part = _UNSTORABLE.sub("?", part)
    return part if len(part) <= 64 else part[:61] + "..."
