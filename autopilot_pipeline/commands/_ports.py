"""Ports for the long-running commands (``dev``, ``serve``): refuse a taken one in one line, or pick a free one."""

from __future__ import annotations

import socket

from autopilot_pipeline.errors import AutopilotError
from autopilot_pipeline.integrations.prometheus_local import free_port

__all__ = ["check_port_free", "port_or_free"]


def check_port_free(host: str, port: int) -> None:
    """Raise a one-line :class:`AutopilotError` when ``host:port`` cannot be bound (IPv4 or IPv6)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise AutopilotError(
                f"port {port} on {host} cannot be used ({exc.strerror or exc}); choose another with --port"
            ) from None


def port_or_free(port: int) -> int:
    """The usual port when it is free on 127.0.0.1, else any free one."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
            return port
        except OSError:
            return free_port()
