"""Batch writes through the connection the Redis backend holds for them: the command bytes packed
by hand are redis-py's, a busy or lost connection or a script Redis forgot still stores the batch."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest
import redis
import redis.connection
from hypothesis import given
from hypothesis import strategies as st

from machinery.backends.redis import _SET_MANY, RedisBackend
from machinery.backends.redis_writer import HeldWriter, pack_command
from machinery.states import TaskResult, TaskState

_parts = st.lists(st.one_of(st.text(max_size=40), st.binary(max_size=40), st.integers(-(2**63), 2**63 - 1)),
                  max_size=12)


_PACKER = redis.connection.PythonRespSerializer(
    65536, redis.connection.Encoder("utf-8", "strict", False).encode)  # type: ignore[attr-defined,no-untyped-call]


@given(_parts)
def test_the_packed_bytes_are_those_redis_py_sends(parts: list[str | bytes | int]) -> None:
    # (redis-py splits a first argument at spaces, taking it for a command name: give it one)
    assert pack_command(["EVALSHA", *parts]) == b"".join(_PACKER.pack("EVALSHA", *parts))  # type: ignore[no-untyped-call]


@pytest.fixture
def backend(redis_url: str) -> Iterator[RedisBackend]:
    backend = RedisBackend(redis_url, prefix=f"machinery-test:{uuid.uuid4().hex[:12]}:")
    yield backend
    backend.close()


def _results(n: int) -> list[TaskResult]:
    return [TaskResult(f"w{i}", TaskState.SUCCESS, "add", i) for i in range(n)]


def _stored(backend: RedisBackend, n: int) -> list[object]:
    return [None if r is None else r.result for r in backend.get_many([f"w{i}" for i in range(n)])]


def test_a_batch_is_stored_through_the_held_connection(backend: RedisBackend) -> None:
    backend.set_many(_results(40))
    assert _stored(backend, 40) == list(range(40))
    assert backend._batches._writer._connection is not None  # it was used and is kept


def test_a_writer_in_use_sends_through_the_client(backend: RedisBackend) -> None:
    writer: HeldWriter = backend._batches._writer
    done = threading.Event()

    def write() -> None:
        backend.set_many(_results(3))
        done.set()

    with writer._lock:  # as if another thread were writing
        threading.Thread(target=write).start()
        assert done.wait(10)
    assert _stored(backend, 3) == [0, 1, 2]


def test_a_script_redis_does_not_know_is_loaded_and_the_batch_stored(backend: RedisBackend) -> None:
    batches = backend._batches
    # A script text never loaded before: EVALSHA answers NOSCRIPT, as after a Redis restart.
    batches._set_many = backend._redis.register_script(_SET_MANY + f"\n-- {uuid.uuid4().hex}\n")
    backend.set_many(_results(5))
    assert _stored(backend, 5) == list(range(5))


def test_a_held_connection_closed_by_the_server_is_replaced(backend: RedisBackend) -> None:
    backend.set_many(_results(2))
    connection = backend._batches._writer._connection
    assert connection is not None
    connection.send_command("CLIENT", "ID")  # type: ignore[no-untyped-call]
    own = connection.read_response()
    backend._redis.client_kill_filter(_id=str(own))
    backend.set_many(_results(6))
    assert _stored(backend, 6) == list(range(6))


def test_a_forked_child_writes_on_a_connection_of_its_own(backend: RedisBackend) -> None:
    import os

    backend.set_many(_results(1))
    parents = backend._batches._writer._connection
    pid = os.fork()
    if pid == 0:  # the child: exit status 0 only if its batch was stored on another connection
        try:
            backend.set_many([TaskResult("w1", TaskState.SUCCESS, "add", 1)])
            os._exit(0 if backend._batches._writer._connection is not parents else 3)
        except BaseException:
            os._exit(4)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert _stored(backend, 2) == [0, 1]
    backend.set_many(_results(3))  # the parent's own connection still works
    assert _stored(backend, 3) == [0, 1, 2]
