"""``ControlStore`` in Redis, under the result backend's prefix: ``revoked`` (a hash: task UUID ->
``<expires-at> <reason>``), ``bucket:<key>`` (a hash: tokens, updated-at; taken by a Lua script on
Redis's own clock, so every host agrees) and ``lease:<key>`` (the owner, or ``done``, with a PX
expiry; claimed by a Lua script)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar, cast

import redis
from redis.commands.core import Script

from machinery.backends.control import Claim

__all__ = ["RedisControl"]

T = TypeVar("T")

# KEYS: bucket. ARGV: rate (tokens/s), capacity. Returns the seconds to wait as a string ("0": taken).
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate, capacity = tonumber(ARGV[1]), tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]), tonumber(state[2])
if tokens == nil then tokens, at = capacity, now end
tokens = math.min(capacity, tokens + math.max(now - at, 0) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / rate * 1000) + 60000)
return tostring(wait)
"""

# KEYS: lease. ARGV: owner, ttl in ms. Returns "mine", "held" or "done".
_CLAIM = """
local v = redis.call('GET', KEYS[1])
if v == 'done' then return 'done' end
if v and v ~= ARGV[1] then return 'held' end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 'mine'
"""

# KEYS: lease. ARGV: owner, keep in ms.
_COMPLETE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[1], 'done', 'PX', ARGV[2]) end
return 0
"""


class RedisControl:
    """``ControlStore`` on a Redis client, keys under ``prefix``; ``call`` runs each operation and
    turns Redis errors into the backend's."""

    def __init__(self, client: redis.Redis, prefix: str, call: Callable[[Callable[[], object]], object]) -> None:
        self._redis = client
        self._run = call
        self._prefix = prefix
        self._take: Script = client.register_script(_TAKE)
        self._claim: Script = client.register_script(_CLAIM)
        self._complete: Script = client.register_script(_COMPLETE)

    def _call(self, operation: Callable[[], T]) -> T:
        return cast(T, self._run(operation))

    def revoke(self, task_uuid: str, reason: str, expires_in: float) -> None:
        value = f"{time.time() + expires_in:.3f} {reason}"
        self._call(lambda: self._redis.hset(f"{self._prefix}revoked", task_uuid, value))

    def revocations(self) -> dict[str, str]:
        key = f"{self._prefix}revoked"
        raw = cast(dict[bytes, bytes], self._call(lambda: self._redis.hgetall(key)))
        now = time.time()
        out: dict[str, str] = {}
        expired = []
        for uuid, value in raw.items():
            expires, _, reason = value.decode("utf-8", "replace").partition(" ")
            if float(expires) <= now:
                expired.append(uuid)
            else:
                out[uuid.decode("utf-8", "replace")] = reason
        if expired:
            self._call(lambda: self._redis.hdel(key, *expired))
        return out

    def take_token(self, key: str, rate: float, capacity: float) -> float:
        keys = [f"{self._prefix}bucket:{key}"]
        return float(cast(bytes, self._call(lambda: self._take(keys=keys, args=[rate, capacity]))))

    def claim(self, key: str, owner: str, ttl: float) -> Claim:
        args: list[str | int] = [owner, max(int(ttl * 1000), 1)]
        found = cast(bytes, self._call(lambda: self._claim(keys=[f"{self._prefix}lease:{key}"], args=args)))
        return Claim(found.decode())

    def complete(self, key: str, owner: str, keep: float) -> None:
        args: list[str | int] = [owner, max(int(keep * 1000), 1)]
        self._call(lambda: self._complete(keys=[f"{self._prefix}lease:{key}"], args=args))
