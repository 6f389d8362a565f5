"""The ``ump-llm`` command: ``main`` holds the app and the server's commands, ``connections``
the ``connections`` commands, ``common`` what they share."""

from ump_llm_connections.cli.main import app

__all__ = ["app"]
