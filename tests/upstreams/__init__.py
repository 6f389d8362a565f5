"""Fake provider servers that speak each provider's documented wire format over real HTTP.

Each is checked by pointing the provider's official SDK at it (tests/test_upstreams_*.py).
"""
