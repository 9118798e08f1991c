"""The Redis result backend (redis-py): task states shared by workers on any number of hosts.

Keys (all under ``prefix``, default ``machinery:``): ``result:<uuid>`` holds the TaskResult as JSON
with a PX expiry of ``expires_in``; ``group:<uuid>:members`` (a list, group order) and
``group:<uuid>:results`` (a hash) hold a chord's bookkeeping, updated atomically by a Lua script;
``follow-ups-sent:<uuid>`` marks a task whose follow-ups were published. A final state is also
published on ``done:<uuid>``, which ``wait`` and ``wait_many`` subscribe to (polling as a
fallback). ``set_many`` writes a batch of results, their expiry and their notifications with one
command (a Lua script; ``RedisBatches``, shared with the Go layout). Every Redis failure becomes
``ResultBackendError``; the password never appears in messages or reprs.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar, cast

import redis
import redis.client
from redis.commands.core import Script
from redis.exceptions import NoScriptError

from machinery.backends.base import READ_CHUNK, wait_all_final, wait_until_final
from machinery.backends.records import decode_record, decode_value, encode_record, encode_value, stamped
from machinery.backends.redis_control import RedisControl
from machinery.backends.redis_writer import HeldWriter, pack_command
from machinery.config import Config
from machinery.errors import ResultBackendError
from machinery.jsonvalues import JSONValue
from machinery.states import TaskResult
from machinery.tls import TLSSettings, describe_tls_error
from machinery.urls import masked_url

__all__ = ["RedisBackend", "RedisBatches", "call_redis", "connect_redis", "open_pubsub", "wait_announced"]

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


# KEYS: result keys (a prefix, then the task's UUID). ARGV: expiry in ms; the announcement channels'
# prefix; the length in bytes of the keys' prefix; one character per key, "1" where its state is
# final (announced on the channel prefix and the UUID); then one record per key. One command for a
# whole batch: Redis sets each key with its expiry and announces the final ones, and the client
# sends no channel names and parses one reply instead of two per result.
_SET_MANY = """
local n = #KEYS
local expiry, channel, skip, finals = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
for i = 1, n do
  redis.call('SET', KEYS[i], ARGV[i + 4], 'PX', expiry)
  if string.byte(finals, i) == 49 then
    redis.call('PUBLISH', channel .. string.sub(KEYS[i], skip + 1), '1')
  end
end
return n
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
    with open_pubsub(client) as pubsub:
        call_redis(where, lambda: pubsub.subscribe(channel))
        return wait_until_final(get, lambda seconds: call_redis(where, lambda: pubsub.get_message(timeout=seconds)),
                                deadline, poll_interval)


@contextlib.contextmanager
def open_pubsub(client: redis.Redis) -> Iterator[redis.client.PubSub]:
    """A pub/sub connection of ``client`` for the ``with`` block, closed at its end."""
    pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
    try:
        yield pubsub
    finally:
        try:
            pubsub.close()
        except redis.RedisError:
            pass


class RedisBatches:
    """The batched reads and writes both Redis layouts share: documents written with their expiry
    and announcements in one command, read with ``MGET`` ``READ_CHUNK`` at a time, awaited on one
    pub/sub connection, and the record of follow-ups sent."""

    def __init__(self, client: redis.Redis, where: str, expire_ms: int, *, key_prefix: str, channel_prefix: str,
                 sent_prefix: str) -> None:
        self._redis = client
        self._where = where
        self._expire_ms = expire_ms
        self._key_prefix = key_prefix
        self._key_prefix_bytes = len(key_prefix.encode())
        self._channel_prefix = channel_prefix
        self._sent_prefix = sent_prefix
        self._set_many: Script = client.register_script(_SET_MANY)
        self._writer = HeldWriter(client)

    def key(self, task_uuid: str) -> str:
        """Where the task's document is kept."""
        return self._key_prefix + task_uuid

    def channel(self, task_uuid: str) -> str:
        """Where the task's final state is announced."""
        return self._channel_prefix + task_uuid

    def write(self, task_uuids: Sequence[str], documents: Sequence[str | bytes], finals: Sequence[bool]) -> None:
        """Set each task's key to its document with the expiry, and announce each final one."""
        if task_uuids:
            prefix = self._key_prefix
            keys = [prefix + uuid for uuid in task_uuids]
            flags = "".join(["1" if final else "0" for final in finals])
            args: list[str | bytes | int] = [self._expire_ms, self._channel_prefix, self._key_prefix_bytes, flags,
                                             *documents]
            call_redis(self._where, lambda: self._write(keys, args))

    def _write(self, keys: list[str], args: list[str | bytes | int]) -> None:
        """The batch script run on the held connection, else (busy, or the script not loaded yet:
        Redis restarted or flushed its scripts) through the client, which loads it."""
        script = self._set_many
        try:
            done = self._writer.try_call(pack_command(["EVALSHA", script.sha, len(keys), *keys, *args]))
        except NoScriptError:
            done = False
        if not done:
            script(keys=keys, args=args)

    def close(self) -> None:
        """Give back the connection held for writes."""
        self._writer.close()

    def read(self, keys: Sequence[str]) -> list[bytes | None]:
        """The value of each key (None where missing), in order."""
        out: list[bytes | None] = []
        for start in range(0, len(keys), READ_CHUNK):
            chunk = list(keys[start:start + READ_CHUNK])
            out.extend(cast(list[bytes | None], call_redis(self._where, functools.partial(self._redis.mget, chunk))))
        return out

    def wait_many(
        self, task_uuids: Sequence[str], channel: Callable[[str], str],
        get_many: Callable[[Sequence[str]], list[TaskResult | None]], timeout: float, poll_interval: float,
    ) -> list[TaskResult | None]:
        """``ResultBackend.wait_many``: one pub/sub connection subscribed to the unfinished tasks'
        channels, the unfinished ones re-read in batches when notified (polling as a fallback)."""
        states = get_many(task_uuids)
        pending = [uuid for uuid, state in zip(task_uuids, states, strict=True) if state is None or not state.ready]
        if not pending or timeout <= 0:
            return states
        deadline = time.monotonic() + timeout
        with open_pubsub(self._redis) as pubsub:
            for start in range(0, len(pending), READ_CHUNK):
                channels = [channel(uuid) for uuid in pending[start:start + READ_CHUNK]]
                call_redis(self._where, functools.partial(pubsub.subscribe, *channels))
            return wait_all_final(task_uuids, get_many, lambda seconds: self._listen_all(pubsub, seconds),
                                  deadline, poll_interval)

    def _listen_all(self, pubsub: redis.client.PubSub, timeout: float) -> None:
        """Wait up to ``timeout`` for a notification, then take every one already queued."""
        if call_redis(self._where, lambda: pubsub.get_message(timeout=timeout)) is None:
            return
        for _ in range(100_000):
            if call_redis(self._where, lambda: pubsub.get_message(timeout=0.0)) is None:
                return

    def sent_key(self, task_uuid: str) -> str:
        return f"{self._sent_prefix}{task_uuid}"

    def mark_sent(self, task_uuids: Sequence[str]) -> None:
        """Record that these tasks' follow-ups were published, in one pipelined round trip."""
        if not task_uuids:
            return

        def mark() -> None:
            pipe = self._redis.pipeline(transaction=False)
            for uuid in task_uuids:
                pipe.set(self.sent_key(uuid), b"1", px=self._expire_ms)
            pipe.execute()

        call_redis(self._where, mark)

    def sent(self, task_uuid: str) -> bool:
        """Whether the task's follow-ups were recorded as published (and not expired)."""
        return bool(call_redis(self._where, lambda: self._redis.exists(self.sent_key(task_uuid))))


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
        self._batches = RedisBatches(self._redis, self._where, self._expire_ms, key_prefix=f"{prefix}result:",
                                     channel_prefix=f"{prefix}done:", sent_prefix=f"{prefix}follow-ups-sent:")
        self.control = RedisControl(self._redis, prefix, self._call)
        """Revocations, rate-limit buckets and leases (``ControlStore``) under the same prefix."""

    @classmethod
    def from_config(cls, config: Config) -> RedisBackend:
        """A backend for ``config.result_backend`` keeping results ``config.results_expire_in`` seconds."""
        return cls(config.result_backend, expires_in=config.results_expire_in, tls=TLSSettings.from_config(config))

    def __repr__(self) -> str:
        return f"<RedisBackend {self._where} prefix={self.prefix!r}>"

    def _call(self, operation: Callable[[], T]) -> T:
        return call_redis(self._where, operation)

    def _result_key(self, task_uuid: str) -> str:
        return self._batches.key(task_uuid)

    def _done_channel(self, task_uuid: str) -> str:
        return self._batches.channel(task_uuid)

    def _group_keys(self, group_uuid: str) -> tuple[str, str]:
        return f"{self.prefix}group:{group_uuid}:members", f"{self.prefix}group:{group_uuid}:results"

    def set(self, result: TaskResult) -> None:
        """Store ``result`` (expiring after ``expires_in``); announce a final state to waiters."""
        self.set_many((result,))

    def set_many(self, results: Sequence[TaskResult]) -> None:
        """Store every one of ``results`` (each expiring after ``expires_in``) and announce the
        final ones to their waiters, with one command."""
        if not results:
            return
        now = time.time()
        self._batches.write([r.task_uuid for r in results],
                            [encode_record(r if r.updated_at else stamped(r, now)) for r in results],
                            [r.state.is_final for r in results])

    def get(self, task_uuid: str) -> TaskResult | None:
        """The latest stored state, or None."""
        text = cast(bytes | None, self._call(lambda: self._redis.get(self._result_key(task_uuid))))
        return None if text is None else decode_record(text)

    def get_many(self, task_uuids: Sequence[str]) -> list[TaskResult | None]:
        """The latest stored state of each task, in order (one ``MGET`` per ``READ_CHUNK``)."""
        texts = self._batches.read([self._result_key(uuid) for uuid in task_uuids])
        return [None if text is None else decode_record(text) for text in texts]

    def wait(self, task_uuid: str, timeout: float) -> TaskResult | None:
        """Block up to ``timeout`` seconds for a final state (pub/sub, polling as a fallback)."""
        return wait_announced(self._redis, self._where, self._done_channel(task_uuid), lambda: self.get(task_uuid),
                              timeout=timeout, poll_interval=self.poll_interval)

    def wait_many(self, task_uuids: Sequence[str], timeout: float) -> list[TaskResult | None]:
        """Block up to ``timeout`` seconds until every task is final (``RedisBatches.wait_many``)."""
        return self._batches.wait_many(task_uuids, self._done_channel, self.get_many, timeout, self.poll_interval)

    def mark_follow_ups_sent(self, task_uuids: Sequence[str]) -> None:
        """Record that these tasks' follow-ups were published, in one pipelined round trip."""
        self._batches.mark_sent(task_uuids)

    def follow_ups_sent(self, task_uuid: str) -> bool:
        """Whether the task's follow-ups were recorded as published (and not expired)."""
        return self._batches.sent(task_uuid)

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
        self._call(lambda: self._redis.delete(self._result_key(task_uuid), self._batches.sent_key(task_uuid)))

    def close(self) -> None:
        """Close the connection pool."""
        self._batches.close()
        try:
            self._redis.close()
        except redis.RedisError:
            pass
