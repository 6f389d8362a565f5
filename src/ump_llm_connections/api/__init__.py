"""The HTTP surface. Only this package imports FastAPI."""
