"""What the Redis result backend adds to the contract: clear errors without passwords, pub/sub
wake-ups, and expiry handed to Redis."""

from __future__ import annotations

import uuid

import pytest

from machinery.backends.redis import RedisBackend
from machinery.config import Config
from machinery.errors import ResultBackendError
from machinery.states import TaskResult, TaskState


@pytest.fixture
def prefix() -> str:
    return f"machinery-test:{uuid.uuid4().hex[:12]}:"


def test_an_unreachable_server_is_a_result_backend_error_without_the_password() -> None:
    backend = RedisBackend("redis://:s3cret@127.0.0.1:1/0", socket_timeout=1.0)
    with pytest.raises(ResultBackendError) as caught:
        backend.get("t1")
    assert "s3cret" not in str(caught.value)
    assert "127.0.0.1:1" in str(caught.value)


def test_the_repr_hides_the_password() -> None:
    backend = RedisBackend("redis://user:s3cret@127.0.0.1:6379/15")
    assert "s3cret" not in repr(backend)


def test_a_url_that_is_not_redis_is_refused() -> None:
    with pytest.raises(ResultBackendError, match="not a Redis URL"):
        RedisBackend("http://127.0.0.1:6379/")


def test_from_config_uses_the_url_and_expiry(redis_url: str) -> None:
    backend = RedisBackend.from_config(Config(result_backend=redis_url, results_expire_in=90))
    try:
        assert backend.expires_in == 90
    finally:
        backend.close()


def test_a_stored_result_carries_its_expiry_in_redis(redis_url: str, prefix: str) -> None:
    backend = RedisBackend(redis_url, expires_in=30, prefix=prefix)
    try:
        backend.set(TaskResult("t1", TaskState.SUCCESS))
        ttl = backend._redis.pttl(f"{prefix}result:t1")
        assert 0 < int(ttl) <= 30_000
    finally:
        backend.forget("t1")
        backend.close()


def test_a_result_json_cannot_carry_is_refused_naming_the_task(redis_url: str, prefix: str) -> None:
    backend = RedisBackend(redis_url, prefix=prefix)
    try:
        with pytest.raises(ResultBackendError, match="t-nan"):
            backend.set(TaskResult("t-nan", TaskState.SUCCESS, result=float("inf")))
    finally:
        backend.close()
