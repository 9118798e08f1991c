"""Configuration: one frozen dataclass, and ``load_config`` that builds it from defaults, a YAML file,
``MACHINERY_*`` environment variables and explicit arguments (later wins)."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from machinery.errors import ConfigError
from machinery.jsonvalues import EMPTY_DICT, FrozenDict, freeze_mapping
from machinery.limits import DEFAULT_MAX_FANOUT, DEFAULT_MAX_MESSAGE_BYTES
from machinery.urls import masked_url

__all__ = ["CONFIG_ENV", "EXCHANGE_TYPES", "WIRE_FORMATS", "Config", "anchor_sqlite_url", "load_config", "masked_url"]

#: The environment variable naming a YAML file to read when ``load_config`` gets no path.
CONFIG_ENV = "MACHINERY_CONFIG"

_ENV_PREFIX = "MACHINERY_"

#: The AMQP exchange types the AMQP broker declares its exchange with (``Config.exchange_type``).
EXCHANGE_TYPES = ("direct", "topic", "fanout")

#: ``Config.wire_format``: this project's own rules, or Go Machinery v1's on every path.
WIRE_FORMATS = ("machinery", "go")


@dataclass(frozen=True, slots=True, repr=False)
class Config:
    """Everything an App needs. The defaults run with no server: SQLite files in the working
    directory for the broker and the results. Construction checks every value (``ConfigError``)."""

    broker_url: str = "sqlite:///machinery.sqlite3"
    """Where messages wait: sqlite:///path (a file; relative paths in a config file are relative to
    that file, elsewhere to the working directory), amqp:// or amqps:// (RabbitMQ), or memory://name
    (one process)."""
    result_backend: str = "sqlite:///machinery.sqlite3"
    """Where task states and results are stored: a URL (sqlite://, redis://, rediss://, memory://)
    or "none" to store no results (relative SQLite paths as for broker_url)."""
    results_expire_in: int = 3600
    """Seconds a stored result is kept."""
    exchange: str = "machinery_exchange"
    """The AMQP exchange tasks are published to."""
    exchange_type: str = "direct"
    """The AMQP exchange's type: direct, fanout, topic or headers."""
    default_queue: str = "machinery_tasks"
    """The queue a signature without a routing key goes to, and the one a worker consumes by default."""
    binding_key: str = "machinery_task"
    """The AMQP binding key of the default queue (and the routing key of messages sent to it)."""
    prefetch_count: int = 32
    """Most messages a worker holds beyond the ones it is running (and AMQP's basic.qos). 32, not
    16: SQLite claims that many per transaction, and 32 processed ~25% faster in benchmarks/throughput.py."""
    queue_declare_args: FrozenDict = field(default=EMPTY_DICT)
    """Extra arguments for declaring AMQP queues, e.g. {"x-max-priority": 10} or {"x-queue-type": "quorum"}."""
    amqp_fast_path: bool = True
    """Let the AMQP broker join outgoing frames and read deliveries with the compiled frame scanner
    (it relies on pika internals, checked at start-up); False uses pika's public API only (slower)."""
    visibility_timeout: float = 30.0
    """Seconds a delivered message stays hidden before it is delivered again (SQLite broker)."""
    max_redeliveries: int = 5
    """Fewest deliveries of a message naming a task no worker took before it is dead-lettered."""
    unregistered_timeout: float = 3600.0
    """Seconds a message naming a task not registered here keeps being offered again (with a
    jittered back-off, for a worker that has it) before it is dead-lettered as FAILURE."""
    concurrency: int = 4
    """Task threads per worker process."""
    retry_backoff_max: float = 60.0
    """Longest wait, in seconds, between retries of a task whose signature sets no retry_timeout."""
    track_started: bool = True
    """Record RECEIVED and STARTED states; False writes only RETRY and the final state."""
    track_started_after: float = 0.05
    """Seconds a message waits in a worker, or a task runs, before its RECEIVED / STARTED state is
    written (quicker tasks get only their final state: two writes fewer); 0 writes them always."""
    tls_ca_file: str = ""
    """PEM file of the CA certificates that sign the amqps:// / rediss:// servers; empty: the system's CAs."""
    tls_cert_file: str = ""
    """PEM file of the client certificate presented to servers that require one."""
    tls_key_file: str = ""
    """PEM file of that certificate's private key; empty: in tls_cert_file."""
    tls_verify: bool = True
    """Verify the server's certificate and name; False encrypts without authenticating the server."""
    tls_server_hostname: str = ""
    """The name the AMQP server's certificate must carry; empty: the URL's host (Redis always uses it)."""
    wire_format: str = "machinery"
    """"go" speaks Go Machinery v1 on every path (typed args, routing keys, Go's delay queues, Go's
    callback argument order, Go's Redis result layout), so Go and Python workers share queues."""
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    """Largest message body a producer sends or a worker runs (larger ones: refused / dead-lettered)."""
    max_fanout: int = DEFAULT_MAX_FANOUT
    """Most messages one message may create when run (callbacks + chord callback), and most members
    of a group or chord sent at once."""
    signing_keys: tuple[str, ...] = ()
    """HMAC-SHA256 keys: the first signs every message sent, any of them verifies; workers
    dead-letter unsigned or badly signed messages. Empty: messages are not signed. Never shown."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "queue_declare_args" and not isinstance(value, FrozenDict):
                if not isinstance(value, Mapping):
                    raise ConfigError(f.name, "a mapping", value)
                object.__setattr__(self, f.name, freeze_mapping(value, f.name))
                continue
            coerced = _coerce(f.name, value, "")
            if f.name in _SECRET_FIELDS:
                object.__setattr__(self, f.name, coerced)

    def __repr__(self) -> str:
        parts = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in _URL_FIELDS:
                value = masked_url(value)
            elif f.name in _SECRET_FIELDS:
                parts.append(f"{f.name}=<{len(value)} keys>")
                continue
            parts.append(f"{f.name}={value!r}")
        return f"Config({', '.join(parts)})"

    def replace(self, **changes: object) -> Config:
        """A copy with ``changes`` applied (checked like the constructor)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


_URL_FIELDS = frozenset({"broker_url", "result_backend"})
_SECRET_FIELDS = frozenset({"signing_keys"})
#: Shortest signing key accepted (characters).
MIN_KEY_LENGTH = 16
_FIELD_TYPES: dict[str, str] = {f.name: str(f.type) for f in dataclasses.fields(Config)}

#: Go Machinery's config.yml keys that differ from ours.
_GO_TOP_KEYS = {"broker": "broker_url"}
_GO_AMQP_KEYS = frozenset({"exchange", "exchange_type", "binding_key", "prefetch_count", "queue_declare_args"})


def _check_url(value: str, *, allow_none: bool) -> bool:
    if allow_none and value == "none":
        return True
    scheme, sep, _ = value.partition("://")
    return bool(sep) and scheme.isascii() and scheme.replace("+", "").isalnum()


def _check_broker_url(value: str) -> bool:
    """One URL, or several AMQP URLs separated by ``;`` (tried in turn: see brokers/amqp_failover.py)."""
    if ";" not in value:
        return _check_url(value, allow_none=False)
    urls = [u.strip() for u in value.split(";")]
    return all(u.partition("://")[0] in ("amqp", "amqps") and _check_url(u, allow_none=False) for u in urls)


def _int_at_least(low: int) -> Callable[[object], bool]:
    return lambda v: isinstance(v, int) and v >= low


def _seconds(*, positive: bool) -> Callable[[object], bool]:
    return lambda v: isinstance(v, float) and (v > 0 if positive else v >= 0) and v != float("inf")


_CHECKS: dict[str, tuple[Callable[[object], bool], str]] = {
    "broker_url": (lambda v: _check_broker_url(str(v)),
                   "a URL such as sqlite:///machinery.sqlite3, or AMQP URLs separated by ;"),
    "result_backend": (lambda v: _check_url(str(v), allow_none=True), 'a URL such as sqlite:///results.db, or "none"'),
    "results_expire_in": (_int_at_least(0), "an integer >= 0 (seconds)"),
    "exchange_type": (lambda v: v in EXCHANGE_TYPES, f"one of {', '.join(EXCHANGE_TYPES)}"),
    "default_queue": (bool, "a non-empty queue name"),
    "prefetch_count": (_int_at_least(0), "an integer >= 0"),
    "visibility_timeout": (_seconds(positive=True), "a finite number of seconds > 0"),
    "max_redeliveries": (_int_at_least(0), "an integer >= 0"),
    "unregistered_timeout": (_seconds(positive=False), "a finite number of seconds >= 0"),
    "concurrency": (_int_at_least(1), "an integer >= 1"),
    "retry_backoff_max": (_seconds(positive=False), "a finite number of seconds >= 0"),
    "track_started_after": (_seconds(positive=False), "a finite number of seconds >= 0"),
    "wire_format": (lambda v: v in WIRE_FORMATS, " or ".join(WIRE_FORMATS)),
    "max_message_bytes": (_int_at_least(1024), "an integer >= 1024 (bytes)"),
    "max_fanout": (_int_at_least(1), "an integer >= 1"),
}

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _coerce(key: str, value: object, source: str, *, from_text: bool = False) -> object:
    """``value`` as the type of field ``key`` (parsing text from the environment), checked."""
    kind = _FIELD_TYPES[key]
    out: object
    if kind == "str":
        if not isinstance(value, str):
            raise ConfigError(key, "a string", value, source=source)
        out = value
    elif kind == "int":
        if from_text and isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise ConfigError(key, "an integer", value, source=source) from None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, "an integer", value, source=source)
        out = value
    elif kind == "float":
        if from_text and isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise ConfigError(key, "a number", value, source=source) from None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            raise ConfigError(key, "a number", value, source=source)
        out = float(value)
    elif kind == "bool":
        if from_text and isinstance(value, str):
            text = value.strip().lower()
            if text not in _TRUE | _FALSE:
                raise ConfigError(key, "true or false", value, source=source)
            value = text in _TRUE
        if not isinstance(value, bool):
            raise ConfigError(key, "true or false", value, source=source)
        out = value
    elif kind == "tuple[str, ...]":  # secret: the value is never put in an error
        if from_text and isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ConfigError(key, "a list of strings (comma-separated in the environment)", source=source)
        if any(len(v) < MIN_KEY_LENGTH for v in value):
            raise ConfigError(key, f"keys of at least {MIN_KEY_LENGTH} characters", source=source)
        out = tuple(value)
    else:  # FrozenDict
        if from_text and isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                raise ConfigError(key, "a JSON object", value, source=source) from None
        if not isinstance(value, Mapping):
            raise ConfigError(key, "a mapping", value, source=source)
        try:
            out = freeze_mapping(value, key)
        except (TypeError, ValueError) as exc:
            raise ConfigError(key, f"a mapping of JSON values ({exc})", source=source) from None
    check = _CHECKS.get(key)
    if check is not None and not check[0](out):
        raise ConfigError(key, check[1], masked_url(out) if isinstance(out, str) else out, source=source)
    return out


def _read_yaml(path: Path) -> dict[str, object]:
    """The settings in YAML file ``path``, in our key names (Go Machinery's layout translated)."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("file", "a readable YAML file", source=f"{source}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError("file", f"valid YAML ({_yaml_problem(exc)})", source=source) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("file", "a mapping of settings at the top level", type(data).__name__, source=source)
    out: dict[str, object] = {}
    for raw_key, value in data.items():
        key = str(raw_key)
        if key == "amqp":
            if not isinstance(value, dict):
                raise ConfigError("amqp", "a mapping", value, source=source)
            for sub, sub_value in value.items():
                if sub not in _GO_AMQP_KEYS:
                    raise ConfigError(f"amqp.{sub}", "one of " + ", ".join(sorted(_GO_AMQP_KEYS)), source=source)
                out[str(sub)] = _coerce(str(sub), sub_value, source)
            continue
        name = _GO_TOP_KEYS.get(key, key)
        if name not in _FIELD_TYPES:
            raise ConfigError(key, "a known setting (" + ", ".join(sorted(_FIELD_TYPES)) + ")", source=source)
        out[name] = _coerce(name, value, source)
        if name in _URL_FIELDS:
            out[name] = anchor_sqlite_url(str(out[name]), path.parent)
    return out


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """What is wrong in a YAML file, with the line and column where the parser noticed it."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        problem = exc.problem or exc.context or "unreadable"
        return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return str(exc).splitlines()[0]


def anchor_sqlite_url(url: str, base: Path) -> str:
    """``url`` with a relative ``sqlite:///path`` made absolute against ``base`` (a config file's
    directory), so every process reading that file uses the same database wherever it runs.
    Other URLs come back unchanged."""
    scheme, sep, rest = url.partition("://")
    if scheme != "sqlite" or not sep or not rest.startswith("/") or rest.startswith("//"):
        return url
    file_part, mark, query = rest[1:].partition("?")
    if not file_part or file_part == ":memory:" or file_part.startswith("file:"):
        return url
    absolute = (base.absolute() / Path(file_part).expanduser()).resolve()
    return f"sqlite:///{absolute.as_posix()}{mark}{query}"


def _read_env(environ: Mapping[str, str]) -> dict[str, object]:
    """Settings from ``MACHINERY_<FIELD>`` variables (other MACHINERY_ variables are not ours)."""
    out: dict[str, object] = {}
    for name in _FIELD_TYPES:
        var = _ENV_PREFIX + name.upper()
        if var in environ:
            out[name] = _coerce(name, environ[var], f"environment {var}", from_text=True)
    return out


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    **overrides: object,
) -> Config:
    """A Config from defaults, then the YAML file ``path`` (or ``$MACHINERY_CONFIG``), then
    ``MACHINERY_*`` environment variables, then ``overrides``; later wins. Bad files, unknown keys
    and bad values raise ``ConfigError`` naming the key and what was expected."""
    env = os.environ if environ is None else environ
    settings: dict[str, object] = {}
    if path is None and env.get(CONFIG_ENV):
        path = env[CONFIG_ENV]
    if path is not None:
        settings.update(_read_yaml(Path(path)))
    settings.update(_read_env(env))
    for key, value in overrides.items():
        if key not in _FIELD_TYPES:
            raise ConfigError(key, "a known setting (" + ", ".join(sorted(_FIELD_TYPES)) + ")", source="arguments")
        settings[key] = _coerce(key, value, "arguments")
    return Config(**settings)  # type: ignore[arg-type]
