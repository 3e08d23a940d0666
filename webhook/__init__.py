"""Wayfinder's mutating admission webhook: the kubelet's Service environment variables, written at admission."""
