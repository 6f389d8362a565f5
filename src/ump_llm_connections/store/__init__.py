"""Persistence: the SQLAlchemy tables, the engine and the repositories. Only this package
imports SQLAlchemy.

Nothing is re-exported here: import the repository of a concept from its module.
"""

__all__: list[str] = []
