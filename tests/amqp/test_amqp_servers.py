"""Several RabbitMQ servers in one broker URL (``amqp://a;amqp://b``), tried in turn."""

from __future__ import annotations

import pytest

from machinery import Config
from machinery.brokers.amqp_servers import AMQPServers
from machinery.config import masked_url
from machinery.errors import BrokerError, ConfigError
from tests.faults.own_servers import free_port
from tests.support.amqp import new_broker
from tests.support.names import unique_name


def test_the_servers_are_taken_in_turn_and_wrap_around() -> None:
    servers = AMQPServers("amqp://u:pw1@a:5672/;amqps://u:pw2@b:5671/vh; amqp://c/")
    assert len(servers) == 3
    hosts = []
    for _ in range(4):
        hosts.append(servers.current.host)
        servers.advance()
    assert hosts == ["a", "b", "c", "a"]
    assert servers.safe_url == "amqp://u:***@a:5672/;amqps://u:***@b:5671/vh;amqp://c/"
    assert sorted(servers.passwords()) == ["pw1", "pw2"]


def test_only_the_amqps_servers_of_a_list_use_tls() -> None:
    servers = AMQPServers("amqp://a/;amqps://b/")
    assert servers.current.ssl_options is None
    servers.advance()
    assert servers.current.ssl_options is not None


@pytest.mark.parametrize("url", ["amqp://a/;", "amqp://a/;sqlite:///x.db", "amqp://a/;;amqp://b/"])
def test_a_bad_server_list_is_refused(url: str) -> None:
    with pytest.raises(BrokerError):
        AMQPServers(url)
    with pytest.raises(ConfigError, match="broker_url"):
        Config(broker_url=url)


def test_a_server_list_is_masked_url_by_url() -> None:
    assert masked_url("amqp://u:secret1@a/;amqp://u:secret2@b/") == "amqp://u:***@a/;amqp://u:***@b/"
    assert "secret" not in repr(Config(broker_url="amqp://u:secret1@a/;amqp://u:secret2@b/"))


def test_a_broker_whose_first_server_is_down_uses_the_next(rabbitmq_url: str) -> None:
    dead = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    token = unique_name("failover")
    broker = new_broker(f"{dead};{rabbitmq_url}", token)
    try:
        broker.publish(f"q-{token}", b"{}")
        assert broker.depth(f"q-{token}").ready == 1
    finally:
        broker.close()


def test_pika_raising_out_of_its_loop_while_connecting_is_a_failed_attempt(
    rabbitmq_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pika raises ValueError out of its I/O loop when a socket closes between its connect and
    # getpeername (seen with a TCP proxy refusing connections); the I/O thread must survive it.
    from pika.adapters.utils import io_services_utils

    real = io_services_utils._AsyncStreamConnector.__init__
    calls = []

    def flaky(self: object, *args: object, **kwargs: object) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("Expected connected socket, but getpeername() failed")
        real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(io_services_utils._AsyncStreamConnector, "__init__", flaky)
    token = unique_name("loop-error")
    broker = new_broker(rabbitmq_url, token)
    try:
        broker.publish(f"q-{token}", b"{}")
        assert broker.depth(f"q-{token}").ready == 1
        assert len(calls) >= 2
    finally:
        broker.close()
