"""Issue: passwords leaked through masking that a URL with an unescaped ``#``, ``?`` or ``/`` in its
password, or a Redis password in the query, could fool. One masker (``machinery.urls``) now serves
every message, log line and repr; these tests generate passwords that no generated output may show."""

from __future__ import annotations

import logging
from collections.abc import Callable
from urllib.parse import quote

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from machinery import App, Config, ConfigError, load_config, masked_url
from machinery.backends.redis import RedisBackend
from machinery.brokers.amqp import AMQPBroker
from machinery.errors import BrokerError, ResultBackendError

SCHEMES = ["amqp", "amqps", "redis", "rediss"]
HOSTS = ["localhost", "rabbit.example.com", "127.0.0.1", "[::1]", "[2001:db8::7]", "h"]
PORTS = ["", ":5672", ":6379", ":1"]
PATHS = ["", "/", "/0", "/vhost", "/%2F"]
QUERIES = ["", "?heartbeat=5", "?db=2&ssl_cert_reqs=none"]
USERS = ["", "guest", "user.name", "u_1"]

#: Printable ASCII (what a password typed into a config file holds), the URL delimiters included,
#: with a "~" somewhere: no repr, field name or URL part of these tests holds one, so a password
#: found in the output can only have leaked.
_PRINTABLE = st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=16)
PASSWORD = st.builds(lambda head, tail: f"{head}~{tail}", _PRINTABLE, _PRINTABLE).filter(lambda p: len(p) >= 6)


def _safe_password(password: str, *visible: str) -> None:
    """Skip a password that the visible parts of the URL contain anyway (it could not be told apart)."""
    for part in visible:
        assume(password not in part)
    assume(password not in "***")


@st.composite
def urls_with_password(draw: st.DrawFn) -> tuple[str, str]:
    """(url, password) in every form a password takes in a URL."""
    password = draw(PASSWORD)
    scheme = draw(st.sampled_from(SCHEMES))
    host = draw(st.sampled_from(HOSTS)) + draw(st.sampled_from(PORTS))
    path = draw(st.sampled_from(PATHS))
    query = draw(st.sampled_from(QUERIES))
    user = draw(st.sampled_from(USERS))
    form = draw(st.sampled_from(["userinfo", "escaped", "query", "query-after"]))
    if form == "userinfo":
        url = f"{scheme}://{user}:{password}@{host}{path}{query}"
    elif form == "escaped":
        password = quote(password, safe="")
        url = f"{scheme}://{user}:{password}@{host}{path}{query}"
    elif form == "query":
        url = f"{scheme}://{host}{path}?password={password}"
    else:
        url = f"{scheme}://{host}{path}{query or '?db=1'}&password={password}"
    _safe_password(password, scheme, host, path, query, user, "password", "db=1")
    return url, password


@settings(max_examples=400)
@given(urls_with_password())
def test_no_password_survives_the_masker(case: tuple[str, str]) -> None:
    url, password = case
    assert password not in masked_url(url)


@settings(max_examples=200)
@given(urls_with_password(), urls_with_password())
def test_no_password_shows_in_the_repr_of_a_config_or_an_app(broker: tuple[str, str], backend: tuple[str, str]) -> None:
    try:
        config = Config(broker_url=broker[0], result_backend=backend[0])
    except ConfigError as exc:  # a ";" in a password reads as a broker list: refused, masked
        texts = [str(exc)]
    else:
        texts = [repr(config), str(config), repr(App(config))]
    for text in texts:
        assert broker[1] not in text
        assert backend[1] not in text


def _open_amqp(url: str) -> object:
    return AMQPBroker(url, connect_attempts=1)


@settings(max_examples=100, deadline=None)
@given(urls_with_password(), st.sampled_from([("amqp", _open_amqp), ("redis", RedisBackend)]))
def test_no_password_shows_in_a_broker_or_backend_error_or_repr(
    case: tuple[str, str], opener: tuple[str, Callable[[str], object]]
) -> None:
    url, password = case
    scheme, open_ = opener
    url = scheme + url[url.index("://"):]
    try:
        opened = open_(url)
    except (BrokerError, ResultBackendError) as exc:
        assert password not in str(exc)
    else:
        text = repr(opened)
        opened.close()  # type: ignore[attr-defined]
        assert password not in text


def test_the_reported_url_with_a_hash_in_its_password_is_masked_in_the_error() -> None:
    url = "amqp://guest:Sup3rSecretPw#frag@127.0.0.1:5672/"
    assert masked_url(url) == "amqp://guest:***@127.0.0.1:5672/"
    with pytest.raises(BrokerError) as caught:
        AMQPBroker(url, connect_attempts=1)
    assert "Sup3rSecretPw" not in str(caught.value)


def test_a_redis_password_in_the_query_is_masked_in_config_and_app_reprs() -> None:
    config = Config(result_backend="redis://host/0?password=Sup3rSecretPw")
    assert "Sup3rSecretPw" not in repr(config)
    assert "Sup3rSecretPw" not in repr(App(config))
    assert masked_url("redis://host/0?db=1&password=Sup3r&x=y") == "redis://host/0?db=1&password=***"


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("amqp://guest:a/b?c#d@e@host:5672/vh", "amqp://guest:***@host:5672/vh"),
        ("redis://:pw@[::1]:6379/0", "redis://:***@[::1]:6379/0"),
        ("rediss://default:pw@[2001:db8::1]/1?ssl_cert_reqs=none", "rediss://default:***@[2001:db8::1]/1?ssl_cert_reqs=none"),
        ("amqps://u:p%40ss@h/vhost?heartbeat=5", "amqps://u:***@h/vhost?heartbeat=5"),
        ("sqlite:///var/lib/machinery.sqlite3?synchronous=full", "sqlite:///var/lib/machinery.sqlite3?synchronous=full"),
        ("redis://h/0?Token=abc", "redis://h/0?Token=***"),
        ("amqp://guest@localhost/", "amqp://guest@localhost/"),
        ("amqp://u:p1@h1/;amqps://u:p@2@h2:5671/", "amqp://u:***@h1/;amqps://u:***@h2:5671/"),
        ("none", "none"),
    ],
)
def test_masked_forms(url: str, masked: str) -> None:
    assert masked_url(url) == masked


@pytest.mark.parametrize(
    "url", ["://guest:Sup3rSecretPw@host", "sqlite://guest:Sup3rSecretPw@host/db", "sqlite://u:Sup3rSecretPw@[x/db"]
)
def test_a_bad_url_is_reported_masked(url: str) -> None:
    from machinery.brokers import open_broker

    with pytest.raises(ConfigError) as caught:
        open_broker(load_config(broker_url=url, environ={}))
    assert "Sup3rSecretPw" not in str(caught.value)


def test_connection_errors_and_their_log_lines_are_masked(caplog: pytest.LogCaptureFixture) -> None:
    broker = AMQPBroker("amqp://guest:Sup3r%2FSecret%3FPw@127.0.0.1:1/", connect_attempts=1, timeout=5.0)
    try:
        with caplog.at_level(logging.DEBUG, logger="machinery"), pytest.raises(BrokerError) as caught:
            broker.publish("masking-test", b"{}")
    finally:
        broker.close()
    assert "127.0.0.1:1" in str(caught.value)
    for text in (str(caught.value), caplog.text, repr(broker)):
        assert "Secret" not in text
