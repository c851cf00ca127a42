"""The throwaway NATS server with JetStream of the broker tests: ``lightson.devservices``'s
(one starter for the tests and ``lightson demo --distributed``). The server dies with the
test session, even one killed with SIGKILL."""

from __future__ import annotations

from lightson.devservices import NatsServer, nats_server

__all__ = ["NatsServer", "nats_server"]
