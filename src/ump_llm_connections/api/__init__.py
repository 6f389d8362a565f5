"""The HTTP surface. Only this package imports FastAPI.

Nothing is re-exported here: ``api.app.create_app`` builds the application, and each module holds
the routes of one resource.
"""

__all__: list[str] = []
