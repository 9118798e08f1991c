"""Signed messages: with ``signing_keys``, every message carries an HMAC-SHA256 of its body in the
``x-machinery-signature`` broker header; workers dead-letter unsigned or badly signed messages with
the reason, on SQLite and on RabbitMQ. Keys rotate (first signs, all verify) and are never shown."""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from machinery import App, Config, ConfigError, Signature, TaskFailed, TaskState, load_config
from machinery.brokers.base import REASON_HEADER, Broker, dead_letter_queue
from machinery.routing import Router
from machinery.signing import SIGNATURE_HEADER, Signer
from tests.faults.fault_app import make_app
from tests.faults.support import T
from tests.runtime.brokers import FACTORIES
from tests.support.waiting import eventually
from tests.support.workers import running

OLD_KEY = "old-key-0123456789abcdef"
NEW_KEY = "new-key-fedcba9876543210"
OTHER_KEY = "someone-elses-key-000000"


@pytest.fixture(params=["sqlite", "amqp"])
def config(request: pytest.FixtureRequest, tmp_path: Path) -> Config:
    made: Config = FACTORIES[request.param](tmp_path)
    return made


@pytest.fixture
def apps(config: Config) -> Iterator[list[App]]:
    made: list[App] = []
    yield made
    for app in made:
        app.close()


def app_with(config: Config, made: list[App], *keys: str) -> App:
    app = make_app(config.replace(signing_keys=keys))
    made.append(app)
    return app


def dead_reasons(config: Config, broker: Broker, expected: int) -> list[str]:
    dead = dead_letter_queue(config.default_queue)
    reasons: list[str] = []

    def fetched() -> bool:
        reasons.extend(d.headers.get(REASON_HEADER, "") for d in broker.fetch([dead], 10, 0.2))
        return len(reasons) >= expected

    assert eventually(fetched, timeout=T)
    return reasons


def test_the_signature_is_an_hmac_sha256_of_the_body_made_with_the_first_key() -> None:
    router = Router(Config(signing_keys=(NEW_KEY, OLD_KEY)))
    message = router.message(Signature("add", [1, 2]))
    expected = hmac.new(NEW_KEY.encode(), message.body, hashlib.sha256).hexdigest()
    assert message.headers == {SIGNATURE_HEADER: f"sha256={expected}"}
    signer = Signer([OLD_KEY, NEW_KEY])
    assert signer.check(message.headers, message.body) == ""
    assert signer.check(message.headers, message.body.replace(b"[1,2]", b"[1,3]")).startswith("bad message signature")
    assert signer.check({}, message.body).startswith("unsigned message")
    assert signer.check({SIGNATURE_HEADER: "md5=00"}, message.body).startswith("bad message signature")
    assert Signer([OLD_KEY]).check(message.headers, message.body).startswith("bad message signature")


def test_signed_messages_run_and_others_are_dead_lettered(
    config: Config, apps: list[App], caplog: pytest.LogCaptureFixture
) -> None:
    worker_app = app_with(config, apps, OLD_KEY, NEW_KEY)
    signed_old = app_with(config, apps, OLD_KEY)
    signed_new = app_with(config, apps, NEW_KEY, OLD_KEY)  # rotation: the new key signs
    unsigned = app_with(config, apps)
    forger = app_with(config, apps, OTHER_KEY)
    with caplog.at_level(logging.DEBUG), running(worker_app, concurrency=2):
        chain_ = Signature("add", [1, 1], on_success=[Signature("add", [10])])  # follow-ups are signed too
        assert signed_old.send_task(chain_).get(timeout=T) == 2
        assert worker_app.result(chain_.on_success[0].uuid).get(timeout=T) == 12
        assert signed_new.send_task(Signature("add", [2, 2])).get(timeout=T) == 4
        # Through the broker's delay (AMQP: TTL queues and back) and a retry, the header stays valid.
        assert signed_old.send_task(Signature("add", [3, 4]).countdown(0.3)).get(timeout=T) == 7
        retried = signed_old.send_task(Signature("exit", [1], retry_count=1, retry_timeout=0))
        with pytest.raises(TaskFailed, match="SystemExit: 1"):
            retried.get(timeout=T)
        refused = [unsigned.send_task(Signature("add", [3, 3])), forger.send_task(Signature("add", [4, 4]))]
        reasons = dead_reasons(config, worker_app.broker, 2)
    assert sorted(r.split(" (")[0] for r in reasons) == ["bad message signature", "unsigned message"]
    assert all(r.state is TaskState.PENDING for r in refused)  # never decoded, never run
    assert "dead-lettering a message from queue" in caplog.text
    for key in (OLD_KEY, NEW_KEY, OTHER_KEY):
        assert key not in caplog.text


def test_a_worker_that_dropped_an_old_key_refuses_messages_signed_with_it(config: Config, apps: list[App]) -> None:
    worker_app = app_with(config, apps, NEW_KEY)
    old_producer = app_with(config, apps, OLD_KEY)
    with running(worker_app, concurrency=1):
        old_producer.send_task(Signature("add", [1, 1]))
        assert dead_reasons(config, worker_app.broker, 1)[0].startswith("bad message signature")


def test_keys_are_never_shown(tmp_path: Path) -> None:
    config = Config(signing_keys=(OLD_KEY, NEW_KEY))
    for text in (repr(config), str(config), repr(App(config)), repr(Router(config).signer)):
        assert OLD_KEY not in text and NEW_KEY not in text
    assert "signing_keys=<2 keys>" in repr(config)
    with pytest.raises(ConfigError) as caught:
        load_config(environ={"MACHINERY_SIGNING_KEYS": "short-secret"})
    assert "short-secret" not in str(caught.value)
    from_env = load_config(environ={"MACHINERY_SIGNING_KEYS": f"{NEW_KEY}, {OLD_KEY}"})
    assert from_env.signing_keys == (NEW_KEY, OLD_KEY)
    yaml_file = tmp_path / "config.yml"
    yaml_file.write_text(f"signing_keys: [{NEW_KEY}]\n")
    assert load_config(yaml_file, environ={}).signing_keys == (NEW_KEY,)
