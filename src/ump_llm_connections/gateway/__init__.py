"""The request path: the in-memory directory, the router, limits, the wire format and the
usage recorder. It imports the providers and the domain, never a service or the store."""
