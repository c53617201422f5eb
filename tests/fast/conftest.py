"""The fast tier: the planner and the executor against in-process fakes, never a socket."""

from __future__ import annotations

import socket

import pytest


@pytest.fixture(autouse=True)
def no_sockets(monkeypatch):
    """Any real connection attempt fails the test: this tier fakes the client boundary."""

    def refuse(self, address):
        raise AssertionError(f"the fast tier opened a socket to {address!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
