"""Config loading: defaults, YAML (ours and Go Machinery's layout), environment, arguments; bad
input names the key; passwords never show."""

from __future__ import annotations

from pathlib import Path

import pytest

from machinery import BrokerError, Config, ConfigError, load_config
from machinery.brokers import open_broker
from machinery.brokers.amqp import AMQPBroker
from machinery.config import EXCHANGE_TYPES

NO_ENV: dict[str, str] = {}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_use_the_embedded_sqlite_files() -> None:
    config = load_config(environ=NO_ENV)
    assert config == Config()
    assert config.broker_url.startswith("sqlite:///")
    assert config.result_backend.startswith("sqlite:///")


def test_yaml_with_our_field_names(tmp_path: Path) -> None:
    path = write(tmp_path, "broker_url: memory://x\nconcurrency: 7\nvisibility_timeout: 2\ntrack_started: false\n")
    config = load_config(path, environ=NO_ENV)
    assert (config.broker_url, config.concurrency, config.visibility_timeout) == ("memory://x", 7, 2.0)
    assert config.track_started is False


def test_yaml_in_go_machinery_layout(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
broker: amqp://guest:guest@localhost:5672/
default_queue: go_tasks
result_backend: redis://localhost:6379/0
results_expire_in: 60
amqp:
  exchange: ex
  exchange_type: topic
  binding_key: bk
  prefetch_count: 3
  queue_declare_args:
    x-max-priority: 10
""",
    )
    config = load_config(path, environ=NO_ENV)
    assert config.broker_url == "amqp://guest:guest@localhost:5672/"
    assert config.default_queue == "go_tasks"
    assert config.result_backend == "redis://localhost:6379/0"
    assert config.results_expire_in == 60
    assert (config.exchange, config.exchange_type) == ("ex", "topic")
    assert (config.binding_key, config.prefetch_count) == ("bk", 3)
    assert config.queue_declare_args == {"x-max-priority": 10}


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "concurrency: 2\ndefault_queue: from_file\n")
    env = {"MACHINERY_CONCURRENCY": "9", "MACHINERY_BROKER_URL": "memory://env"}
    config = load_config(path, environ=env)
    assert (config.concurrency, config.broker_url, config.default_queue) == (9, "memory://env", "from_file")


def test_arguments_override_the_environment() -> None:
    config = load_config(environ={"MACHINERY_CONCURRENCY": "9"}, concurrency=3)
    assert config.concurrency == 3


def test_config_env_variable_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "default_queue: via_env\n")
    assert load_config(environ={"MACHINERY_CONFIG": str(path)}).default_queue == "via_env"


def test_other_machinery_variables_are_ignored() -> None:
    assert load_config(environ={"MACHINERY_NO_EXTENSIONS": "1", "MACHINERY_REQUIRE_REDIS": "1"}) == Config()


def test_env_queue_declare_args_is_json() -> None:
    config = load_config(environ={"MACHINERY_QUEUE_DECLARE_ARGS": '{"x-queue-type": "quorum"}'})
    assert config.queue_declare_args == {"x-queue-type": "quorum"}


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("concurrency: many\n", "concurrency"),
        ("concurrency: 0\n", "concurrency"),
        ("visibility_timeout: -1\n", "visibility_timeout"),
        ("broker: not a url\n", "broker_url"),
        ("result_backend: 5\n", "result_backend"),
        ("exchange_type: sideways\n", "exchange_type"),
        ("colour: blue\n", "colour"),
        ("amqp:\n  exchnage: typo\n", "amqp.exchnage"),
        ("max_redeliveries: true\n", "max_redeliveries"),
    ],
)
def test_bad_yaml_value_names_the_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), environ=NO_ENV)
    assert info.value.key == key
    assert key in str(info.value)
    assert "expected" in str(info.value)


def test_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(environ={"MACHINERY_CONCURRENCY": "four"})
    assert info.value.key == "concurrency"
    assert "MACHINERY_CONCURRENCY" in str(info.value)


def test_unknown_argument_is_refused() -> None:
    with pytest.raises(ConfigError, match="brokr_url"):
        load_config(environ=NO_ENV, brokr_url="memory://")


def test_malformed_yaml_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="YAML"):
        load_config(write(tmp_path, "broker: [unclosed\n"), environ=NO_ENV)


def test_yaml_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="mapping"):
        load_config(write(tmp_path, "- a\n- b\n"), environ=NO_ENV)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yml"):
        load_config(tmp_path / "nope.yml", environ=NO_ENV)


def test_yaml_cannot_build_python_objects(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_config(write(tmp_path, "broker: !!python/object/apply:os.getcwd []\n"), environ=NO_ENV)


def test_constructor_checks_values() -> None:
    with pytest.raises(ConfigError, match="concurrency"):
        Config(concurrency=0)


def test_repr_masks_passwords() -> None:
    config = Config(broker_url="amqp://guest:s3cret@rabbit:5672/", result_backend="redis://:hunter2@redis:6379/0")
    text = repr(config)
    assert "s3cret" not in text
    assert "hunter2" not in text
    assert "amqp://guest:***@rabbit:5672/" in text
    assert "redis://:***@redis:6379/0" in text


def test_unknown_broker_scheme_error_does_not_show_the_password() -> None:
    with pytest.raises(ConfigError) as info:
        open_broker(Config(broker_url="ftp://user:topsecret@h/"))
    assert info.value.key == "broker_url"
    assert "topsecret" not in str(info.value)


def test_bad_url_value_error_does_not_show_the_password() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(environ={"MACHINERY_RESULT_BACKEND": "user:topsecret@h"})
    assert "topsecret" not in str(info.value)


def test_the_amqp_fast_path_is_on_unless_turned_off() -> None:
    assert load_config(environ={}).amqp_fast_path is True
    assert load_config(environ={"MACHINERY_AMQP_FAST_PATH": "false"}).amqp_fast_path is False


def test_exchange_types_are_those_the_amqp_broker_declares() -> None:
    """One list: every type Config accepts, the broker accepts; ``headers`` is refused by both."""
    for kind in EXCHANGE_TYPES:
        assert Config(exchange_type=kind).exchange_type == kind
        AMQPBroker("amqp://guest:guest@127.0.0.1:1/", exchange_type=kind)  # never connects
    with pytest.raises(ConfigError, match="exchange_type"):
        Config(exchange_type="headers")
    with pytest.raises(BrokerError, match="exchange_type"):
        AMQPBroker("amqp://guest:guest@127.0.0.1:1/", exchange_type="headers")
