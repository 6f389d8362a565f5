"""The server's log configuration: uvicorn's text lines, or one JSON object a line.

``UMP_LOG_FORMAT=text`` (the default) looks as uvicorn always did. ``UMP_LOG_FORMAT=json``
writes every record of the server's loggers, uvicorn's and (from warnings up) any other library's
as one JSON object on one line::

    {"time": "2026-11-27T19:00:00.123Z", "level": "INFO", "logger": "ump_llm_connections.registry",
     "message": "created connection 'x' (…)", "exc_info": "Traceback (most recent call last): …"}

``exc_info`` (the formatted traceback, as a string) is there only when an exception was logged.
No secret reaches a record to begin with: keys, header values and tokens are ``SecretText``,
shown as ``**********``, and upstream text is redacted before any message is made of it.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from ump_llm_connections.config import Settings

__all__ = ["JsonFormatter", "logging_config"]

# uvicorn's own formatters (named, not imported: only the API and the CLI import uvicorn).
_TEXT_FORMATTERS: dict[str, dict[str, Any]] = {
    "default": {
        "()": "uvicorn.logging.DefaultFormatter",
        "fmt": "%(levelprefix)s %(message)s",
        "use_colors": None,
    },
    "access": {
        "()": "uvicorn.logging.AccessFormatter",
        "fmt": '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s',
    },
}


class JsonFormatter(logging.Formatter):
    """A record as one line of JSON: time (UTC, ISO 8601), level, logger, message, exc_info."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc_info"] = record.exc_text
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry)  # ASCII: a lone surrogate in a message is escaped, not lost


def logging_config(settings: Settings) -> dict[str, Any]:
    """The ``logging.config.dictConfig`` for the server (what uvicorn's ``log_config`` takes)."""
    as_json = settings.log_format == "json"
    formatters: dict[str, Any] = (
        {"default": {"()": JsonFormatter}, "access": {"()": JsonFormatter}}
        if as_json
        else {name: dict(formatter) for name, formatter in _TEXT_FORMATTERS.items()}
    )
    config: dict[str, Any] = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": formatters,
        "handlers": {
            "default": {
                "formatter": "default",
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
            },
            "access": {
                "formatter": "access",
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
            },
        },
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False},
            "uvicorn.error": {"level": "INFO"},
            "uvicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
            "ump_llm_connections": {
                "handlers": ["default"],
                "level": settings.log_level.upper(),
                "propagate": False,
            },
        },
    }
    if as_json:  # every line JSON: other libraries' warnings too, not Python's plain fallback
        config["root"] = {"handlers": ["default"], "level": "WARNING"}
    return config
