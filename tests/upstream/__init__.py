"""Helpers for the tests of forward, cache, hosts and loop.

`fake` is a scripted DNS server on 127.0.0.1 for unit tests; `knot` runs
Debian's knotd (a real authoritative server) as a child process for the
integration tests; `requests` builds the `Request` a plugin sees.
"""
