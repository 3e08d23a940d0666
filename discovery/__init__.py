"""Wayfinder: Kubernetes service discovery that starts and answers like CoreDNS."""

__version__ = "0.1.0"
