"""The Redis result backend (redis-py): task states shared by workers on any number of hosts.

Keys (all under ``prefix``, default ``machinery:``): ``result:<uuid>`` holds the TaskResult as JSON
with a PX expiry of ``expires_in``; ``group:<uuid>:members`` (a list, group order) and
``group:<uuid>:results`` (a hash) hold a chord's bookkeeping, updated atomically by a Lua script.
A final state is also published on ``done:<uuid>``, which ``wait`` subscribes to (polling as a
fallback). Every Redis failure becomes ``ResultBackendError``; the password never appears in
messages or reprs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TypeVar, cast

import redis
import redis.client
from redis.commands.core import Script

from machinery.backends.base import wait_until_final
from machinery.backends.records import decode_record, decode_value, encode_record, encode_value, stamped
from machinery.config import Config
from machinery.errors import ResultBackendError
from machinery.jsonvalues import JSONValue
from machinery.states import TaskResult
from machinery.tls import TLSSettings, describe_tls_error
from machinery.urls import masked_url

__all__ = ["RedisBackend", "call_redis", "connect_redis", "wait_announced"]

T = TypeVar("T")

# KEYS: members list, results hash. ARGV: task uuid, result JSON, expiry in ms.
# Returns -1 for an unknown group, 0 while results are missing, else the results in group order.
_ADD_RESULT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if redis.call('HLEN', KEYS[2]) < redis.call('LLEN', KEYS[1]) then return 0 end
local members = redis.call('LRANGE', KEYS[1], 0, -1)
local values = {}
for i, member in ipairs(members) do
  local value = redis.call('HGET', KEYS[2], member)
  if not value then return 0 end
  values[i] = value
end
return values
"""


def _describe(url: str) -> str:
    """The URL without password or query, for messages."""
    return masked_url(url).split("?", 1)[0]


def connect_redis(url: str, socket_timeout: float, tls: TLSSettings | None = None) -> tuple[redis.Redis, str]:
    """A redis-py client (pooled) for ``url`` and the URL as messages show it; ``ResultBackendError``
    for a bad URL. A ``rediss://`` URL connects with ``tls`` (``ConfigError`` for unreadable files)."""
    where = _describe(url)
    scheme = url.partition("://")[0].lower()  # urlsplit may raise on it
    if scheme not in ("redis", "rediss", "unix"):
        raise ResultBackendError(f"not a Redis URL: {where}")
    tls_options = (tls or TLSSettings()).redis_options() if scheme == "rediss" else {}
    try:
        client = redis.Redis.from_url(url, socket_timeout=socket_timeout,
                                      socket_connect_timeout=min(socket_timeout, 5.0), **tls_options)
    except Exception as exc:  # the parser's own message may quote the URL: never shown
        raise ResultBackendError(f"Redis result backend at {where}: {type(exc).__name__}") from None
    return client, where


def call_redis(where: str, operation: Callable[[], T]) -> T:
    """``operation()``, any Redis failure raised as ``ResultBackendError`` naming ``where``."""
    try:
        return operation()
    except redis.RedisError as exc:
        why = describe_tls_error(exc) or f"{type(exc).__name__}: {exc}"
        raise ResultBackendError(f"Redis result backend at {where}: {why}") from None


def wait_announced(
    client: redis.Redis, where: str, channel: str, get: Callable[[], TaskResult | None], *, timeout: float,
    poll_interval: float,
) -> TaskResult | None:
    """Wait up to ``timeout`` seconds for ``get()`` to give a final state, woken by announcements
    on ``channel`` and reading again every ``poll_interval`` seconds in any case."""
    current = get()
    if (current is not None and current.ready) or timeout <= 0:
        return current
    deadline = time.monotonic() + timeout
    pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
    try:
        call_redis(where, lambda: pubsub.subscribe(channel))
        return wait_until_final(get, lambda seconds: call_redis(where, lambda: pubsub.get_message(timeout=seconds)),
                                deadline, poll_interval)
    finally:
        try:
            pubsub.close()
        except redis.RedisError:
            pass


class RedisBackend:
    """A ResultBackend in Redis; thread-safe (redis-py pools connections)."""

    def __init__(
        self,
        url: str,
        *,
        expires_in: float = 3600.0,
        prefix: str = "machinery:",
        poll_interval: float = 0.5,
        socket_timeout: float = 10.0,
        tls: TLSSettings | None = None,
    ) -> None:
        self._redis, self._where = connect_redis(url, socket_timeout, tls)
        if expires_in <= 0:
            raise ResultBackendError(f"expires_in must be > 0 seconds, got {expires_in!r}")
        self.expires_in = float(expires_in)
        self.prefix = prefix
        self.poll_interval = float(poll_interval)
        self._expire_ms = max(1, round(self.expires_in * 1000))
        self._add_result: Script = self._redis.register_script(_ADD_RESULT)

    @classmethod
    def from_config(cls, config: Config) -> RedisBackend:
        """A backend for ``config.result_backend`` keeping results ``config.results_expire_in`` seconds."""
        return cls(config.result_backend, expires_in=config.results_expire_in, tls=TLSSettings.from_config(config))

    def __repr__(self) -> str:
        return f"<RedisBackend {self._where} prefix={self.prefix!r}>"

    def _call(self, operation: Callable[[], T]) -> T:
        return call_redis(self._where, operation)

    def _result_key(self, task_uuid: str) -> str:
        return f"{self.prefix}result:{task_uuid}"

    def _done_channel(self, task_uuid: str) -> str:
        return f"{self.prefix}done:{task_uuid}"

    def _group_keys(self, group_uuid: str) -> tuple[str, str]:
        return f"{self.prefix}group:{group_uuid}:members", f"{self.prefix}group:{group_uuid}:results"

    def set(self, result: TaskResult) -> None:
        """Store ``result`` (expiring after ``expires_in``); announce a final state to waiters."""
        result = stamped(result)
        record = encode_record(result)

        def store() -> None:
            pipe = self._redis.pipeline(transaction=False)
            pipe.set(self._result_key(result.task_uuid), record, px=self._expire_ms)
            if result.state.is_final:
                pipe.publish(self._done_channel(result.task_uuid), b"1")
            pipe.execute()

        self._call(store)

    def get(self, task_uuid: str) -> TaskResult | None:
        """The latest stored state, or None."""
        text = cast(bytes | None, self._call(lambda: self._redis.get(self._result_key(task_uuid))))
        return None if text is None else decode_record(text)

    def wait(self, task_uuid: str, timeout: float) -> TaskResult | None:
        """Block up to ``timeout`` seconds for a final state (pub/sub, polling as a fallback)."""
        return wait_announced(self._redis, self._where, self._done_channel(task_uuid), lambda: self.get(task_uuid),
                              timeout=timeout, poll_interval=self.poll_interval)

    def group_start(self, group_uuid: str, task_uuids: Sequence[str]) -> None:
        """Record the group's members in order (replacing any earlier record of the group)."""
        members, results = self._group_keys(group_uuid)

        def start() -> None:
            pipe = self._redis.pipeline(transaction=True)
            pipe.delete(members, results)
            if task_uuids:
                pipe.rpush(members, *task_uuids)
                pipe.pexpire(members, self._expire_ms)
            pipe.execute()

        self._call(start)

    def group_add_result(self, group_uuid: str, task_uuid: str, result: JSONValue) -> list[JSONValue] | None:
        """Record a member's result atomically; all results in group order once every member has
        one, else None (also None for a group not started, finished or expired)."""
        text = encode_value(result, task_uuid)
        keys = list(self._group_keys(group_uuid))
        reply = self._call(lambda: self._add_result(keys=keys, args=[task_uuid, text, self._expire_ms]))
        if not isinstance(reply, list):
            return None
        return [decode_value(cast(bytes, value)) for value in reply]

    def group_done(self, group_uuid: str) -> None:
        """Forget the group's bookkeeping."""
        self._call(lambda: self._redis.delete(*self._group_keys(group_uuid)))

    def forget(self, task_uuid: str) -> None:
        """Drop the task's stored state."""
        self._call(lambda: self._redis.delete(self._result_key(task_uuid)))

    def close(self) -> None:
        """Close the connection pool."""
        try:
            self._redis.close()
        except redis.RedisError:
            pass
