"""Dependency aliases for the routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ump_llm_connections.registry import Registry


def _registry(request: Request) -> Registry:
    registry: Registry = request.app.state.service.registry
    return registry


RegistryDep = Annotated[Registry, Depends(_registry)]
