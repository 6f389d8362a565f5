"""The OpenAI-compatible gateway: a call goes ``core`` → ``router`` → a provider adapter, and
its usage to the batched recorder (``usage``). ``directory`` is the in-memory view of the
connections and pools it serves; ``wire`` reads and writes the OpenAI format. It imports the
providers and the domain, never a service or the store.

Nothing is re-exported here: import from the module that defines a name.
"""

__all__: list[str] = []
