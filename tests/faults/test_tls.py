"""TLS: ``amqps://`` and ``rediss://`` through a RabbitMQ node and a Redis of the test's own, both
requiring client certificates, with certificates made by the test."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from machinery import App, Config, Signature, load_config
from machinery.backends.redis import RedisBackend
from machinery.brokers.amqp import AMQPBroker
from machinery.errors import BrokerError, ConfigError, ResultBackendError
from machinery.states import TaskResult, TaskState
from machinery.tls import TLSSettings
from tests.faults.certificates import PKI, make_pki
from tests.faults.own_servers import OwnRedis, RabbitNode
from tests.support.processes import worker_process

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_rabbit(tmp_path_factory: pytest.TempPathFactory, pki: PKI) -> Iterator[RabbitNode]:
    """A RabbitMQ node with only a TLS listener that requires a client certificate."""
    base = tmp_path_factory.mktemp("rabbit-tls")
    node = RabbitNode(base / "node", "machinery-tls", home=base / "home", tls=pki, client_certs=True).start()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory, pki: PKI) -> Iterator[OwnRedis]:
    """A Redis with only a TLS port that requires a client certificate."""
    server = OwnRedis(tmp_path_factory.mktemp("redis-tls"), pki, client_certs=True)
    try:
        yield server
    finally:
        server.stop()


def _client(pki: PKI, **changes: object) -> TLSSettings:
    settings = {"ca_file": str(pki.ca), "cert_file": str(pki.client_cert), "key_file": str(pki.client_key)}
    settings.update({k: str(v) if isinstance(v, Path) else v for k, v in changes.items()})  # type: ignore[misc]
    return TLSSettings(**settings)  # type: ignore[arg-type]


def _amqp_error(node: RabbitNode, tls: TLSSettings, url: str | None = None) -> str:
    """The error text of publishing through ``node`` with ``tls`` (which must fail)."""
    broker = AMQPBroker(url or node.url("amqps"), exchange="ex-tls", default_queue="q-tls", binding_key="q-tls",
                        connect_attempts=2, timeout=20.0, tls=tls)
    try:
        with pytest.raises(BrokerError) as caught:
            broker.publish("q-tls", b"{}")
    finally:
        broker.close()
    return str(caught.value)


def test_a_task_runs_end_to_end_over_verified_tls_with_client_certificates(
    tmp_path: Path, pki: PKI, tls_rabbit: RabbitNode, tls_redis: OwnRedis
) -> None:
    config = Config(
        broker_url=tls_rabbit.url("amqps"),
        result_backend=tls_redis.url,
        exchange="ex-tls-e2e",
        default_queue="q-tls-e2e",
        binding_key="q-tls-e2e",
        tls_ca_file=str(pki.ca),
        tls_cert_file=str(pki.client_cert),
        tls_key_file=str(pki.client_key),
    )
    # The worker is configured through MACHINERY_TLS_* variables, the sender explicitly.
    tls_env = {
        "MACHINERY_TLS_CA_FILE": str(pki.ca),
        "MACHINERY_TLS_CERT_FILE": str(pki.client_cert),
        "MACHINERY_TLS_KEY_FILE": str(pki.client_key),
    }
    with worker_process(config, tmp_path / "worker.log", "-c", "2", **tls_env) as worker, App(config) as app:
        result = app.send_task(Signature("add", [20, 22]))
        assert result.get(timeout=60) == 42, worker.output()
        chained = app.send_task(Signature("multiply", [6, 7]))
        assert chained.get(timeout=60) == 42, worker.output()
    assert worker.process.returncode == 0, worker.output()


def test_the_tls_settings_come_from_yaml_and_the_environment(tmp_path: Path, pki: PKI) -> None:
    path = tmp_path / "config.yml"
    path.write_text(f"tls_ca_file: {pki.ca}\ntls_verify: false\ntls_server_hostname: rabbit.internal\n")
    config = load_config(path, environ={"MACHINERY_TLS_CERT_FILE": str(pki.client_cert),
                                        "MACHINERY_TLS_VERIFY": "true"})
    assert TLSSettings.from_config(config) == TLSSettings(
        ca_file=str(pki.ca), cert_file=str(pki.client_cert), verify=True, server_hostname="rabbit.internal"
    )
    with pytest.raises(ConfigError, match="tls_verify"):
        load_config(environ={"MACHINERY_TLS_VERIFY": "perhaps"})


def test_a_server_signed_by_another_ca_is_refused_with_one_clear_line(
    pki: PKI, tls_rabbit: RabbitNode, tls_redis: OwnRedis
) -> None:
    started = time.monotonic()
    text = _amqp_error(tls_rabbit, _client(pki, ca_file=pki.other_ca))
    assert "TLS: server certificate not trusted" in text, text
    assert "\n" not in text and "guest:guest" not in text
    assert time.monotonic() - started < 30

    backend = RedisBackend(tls_redis.url, tls=_client(pki, ca_file=pki.other_ca))
    with pytest.raises(ResultBackendError) as caught:
        backend.get("task_x")
    assert "TLS: server certificate not trusted" in str(caught.value)
    assert "\n" not in str(caught.value)
    backend.close()


def test_a_certificate_for_another_name_is_refused(pki: PKI, tls_rabbit: RabbitNode) -> None:
    text = _amqp_error(tls_rabbit, _client(pki, server_hostname="rabbit.elsewhere.example"))
    assert "TLS: server certificate not trusted" in text and "mismatch" in text, text


def test_the_server_name_to_check_can_differ_from_the_url_host(pki: PKI, tls_rabbit: RabbitNode) -> None:
    # The URL names 127.0.0.1; the certificate also carries "localhost", which is checked instead.
    broker = AMQPBroker(tls_rabbit.url("amqps"), exchange="ex-tls-name", default_queue="q-tls-name",
                        binding_key="q-tls-name", tls=_client(pki, server_hostname="localhost"), timeout=20.0)
    try:
        broker.publish("q-tls-name", b"{}")
        assert broker.depth("q-tls-name").ready == 1
    finally:
        broker.close()


def test_without_verification_any_server_certificate_is_accepted(pki: PKI, tls_rabbit: RabbitNode) -> None:
    broker = AMQPBroker(tls_rabbit.url("amqps"), exchange="ex-tls-noverify", default_queue="q-tls-noverify",
                        binding_key="q-tls-noverify", tls=_client(pki, ca_file=pki.other_ca, verify=False),
                        timeout=20.0)
    try:
        broker.publish("q-tls-noverify", b"{}")
    finally:
        broker.close()


def test_a_server_that_requires_a_client_certificate_refuses_a_client_without_one(
    pki: PKI, tls_rabbit: RabbitNode, tls_redis: OwnRedis
) -> None:
    # TLS 1.3 servers send the "certificate required" alert, or just close: both read as one line.
    no_cert = TLSSettings(ca_file=str(pki.ca))
    text = _amqp_error(tls_rabbit, no_cert)
    assert "TLS: the server" in text and "client certificate" in text and "\n" not in text, text

    backend = RedisBackend(tls_redis.url, tls=no_cert)
    with pytest.raises(ResultBackendError) as caught:
        backend.get("task_x")
    assert "TLS: the server" in str(caught.value) and "client certificate" in str(caught.value), caught.value
    backend.close()

    with_cert = RedisBackend(tls_redis.url, tls=_client(pki))
    try:
        record = TaskResult(task_uuid="task_tls", name="add", state=TaskState.SUCCESS, result=3)
        with_cert.set(record)
        got = with_cert.get("task_tls")
        assert got is not None and got.result == 3
    finally:
        with_cert.close()


def test_unreadable_tls_files_are_one_clear_config_error(tmp_path: Path, pki: PKI) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(ConfigError, match=r"tls_ca_file .*nope\.pem"):
        AMQPBroker("amqps://guest:guest@127.0.0.1:1/", tls=TLSSettings(ca_file=str(missing)))
    with pytest.raises(ConfigError, match="tls_cert_file"):
        RedisBackend("rediss://127.0.0.1:1/0", tls=TLSSettings(cert_file=str(pki.ca)))  # a CA, no key
    with pytest.raises(ConfigError, match="tls_cert_file"):
        TLSSettings(key_file=str(pki.client_key)).context()
