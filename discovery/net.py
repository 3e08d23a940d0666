"""Addresses written as Go's net package writes them, for labels and logs that match CoreDNS's."""

from __future__ import annotations

__all__ = ["join_host_port"]


def join_host_port(host: str, port: int) -> str:
    """Go's net.JoinHostPort: "host:port", with brackets around a host that holds a colon ("[::1]:53")."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
