"""A guard for tests that must not reach any network, 127.0.0.1 included (kopf-style).

Inside the guard every ``connect`` of an internet socket raises ``NetworkUsed`` (not an
OSError, so HTTP libraries do not retry or wrap it), and the test also fails at teardown
in case the code under test caught the error and carried on.
Use the ``no_network`` fixture, or mark a module ``pytestmark = pytest.mark.no_network``.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest


class NetworkUsed(RuntimeError):
    """A test under the no-network guard tried to open a connection."""


class NetworkGuard:
    def __init__(self) -> None:
        self.attempts: list[str] = []

    def refuse(self, sock: socket.socket, address) -> None:
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return
        self.attempts.append(repr(address))
        raise NetworkUsed(f"this test must not use the network, but it connected to {address!r}")


@pytest.fixture
def no_network(monkeypatch) -> Iterator[NetworkGuard]:
    guard = NetworkGuard()
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def connect(sock, address):
        guard.refuse(sock, address)
        return real_connect(sock, address)

    def connect_ex(sock, address):
        guard.refuse(sock, address)
        return real_connect_ex(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    yield guard
    if guard.attempts:
        pytest.fail(f"a test under the no-network guard connected to: {', '.join(guard.attempts)}", pytrace=False)
