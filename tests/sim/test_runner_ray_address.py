"""A Ray address where nothing listens fails at once, naming the option."""

from __future__ import annotations

import socket

import pytest

from lightson.domain.errors import ConfigError
from lightson.sim.runner import check_ray_address


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_nothing_listening_is_refused_at_once() -> None:
    port = _closed_port()
    with pytest.raises(ConfigError, match=f"--ray-address.*nothing answers at 127.0.0.1:{port}"):
        check_ray_address(f"127.0.0.1:{port}")
    with pytest.raises(ConfigError, match="nothing answers"):
        check_ray_address(f"ray://127.0.0.1:{port}")


def test_a_listening_address_and_auto_pass() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        check_ray_address(f"127.0.0.1:{server.getsockname()[1]}")
    check_ray_address("auto")


def test_a_malformed_port_is_named() -> None:
    with pytest.raises(ConfigError, match="is not host:port"):
        check_ray_address("head-node:http")
