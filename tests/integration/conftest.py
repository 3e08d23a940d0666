"""Fixtures shared by the integration tests."""

from tests.integration.dnsserver import dns_server

__all__ = ["dns_server"]
