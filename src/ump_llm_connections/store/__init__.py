"""Persistence: the SQLAlchemy tables, the engine and the repositories. Only this package
imports SQLAlchemy."""
