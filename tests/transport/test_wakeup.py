"""Wake-ups between processes: listeners on unix datagram sockets, poked after a commit."""

from __future__ import annotations

import os
import socket
import tempfile
import time
from pathlib import Path

from machinery.sqlite.wakeup import Listener, WakeupChannel, wake_directory


def test_a_notify_wakes_a_waiting_listener(tmp_path: Path) -> None:
    channel = WakeupChannel(tmp_path / "wake")
    listener = channel.listen()
    try:
        channel.notify()
        started = time.monotonic()
        assert listener.wait(10.0)
        assert time.monotonic() - started < 2.0
    finally:
        listener.close()


def test_a_listener_with_nothing_to_hear_waits_out_its_timeout(tmp_path: Path) -> None:
    listener = WakeupChannel(tmp_path / "wake").listen()
    try:
        started = time.monotonic()
        assert not listener.wait(0.2)
        assert time.monotonic() - started >= 0.15
    finally:
        listener.close()


def test_drain_discards_pending_wakeups(tmp_path: Path) -> None:
    channel = WakeupChannel(tmp_path / "wake")
    listener = channel.listen()
    try:
        channel.notify()
        channel.notify()
        listener.drain()
        assert not listener.wait(0.1)
    finally:
        listener.close()


def test_a_notify_reaches_only_listeners_of_its_topic(tmp_path: Path) -> None:
    channel = WakeupChannel(tmp_path / "wake")
    mine, other = channel.listen("task-1"), channel.listen("task-2")
    try:
        channel.notify("task-1")
        assert mine.wait(5.0)
        assert not other.wait(0.1)
    finally:
        mine.close()
        other.close()


def test_a_listener_is_woken_by_a_listener_created_after_the_listing_was_cached(tmp_path: Path) -> None:
    channel = WakeupChannel(tmp_path / "wake")
    first = channel.listen()
    channel.notify()  # caches the listing
    second = channel.listen()
    try:
        channel.notify()
        assert second.wait(5.0)
    finally:
        first.close()
        second.close()


def test_closing_a_listener_removes_its_socket_file(tmp_path: Path) -> None:
    listener = WakeupChannel(tmp_path / "wake").listen()
    assert os.path.exists(listener.path)
    listener.close()
    assert not os.path.exists(listener.path)


def test_a_socket_left_by_a_dead_process_is_removed_at_the_next_notify(tmp_path: Path) -> None:
    directory = tmp_path / "wake"
    directory.mkdir()
    stale = str(directory / "all.999999.dead")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(stale)
    sock.close()  # the file stays, nobody listens: what a SIGKILLed process leaves behind
    WakeupChannel(directory).notify()
    assert not os.path.exists(stale)


def test_a_notify_with_no_directory_does_nothing(tmp_path: Path) -> None:
    WakeupChannel(tmp_path / "missing").notify()


def test_the_wake_directory_sits_beside_the_database() -> None:
    with tempfile.TemporaryDirectory(prefix="mw") as short:
        assert wake_directory(f"{short}/db.sqlite3", "broker") == Path(short) / "db.sqlite3.wake" / "broker"


def test_a_database_path_too_long_for_sockets_gets_a_short_wake_directory(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 90) / "db.sqlite3"
    deep.parent.mkdir()
    directory = wake_directory(str(deep), "broker")
    assert len(str(directory)) <= 72
    listener = Listener(directory)
    try:
        assert len(listener.path) < 108
        WakeupChannel(directory).notify()
        assert listener.wait(5.0)
    finally:
        listener.close()


def test_the_last_listener_to_close_removes_the_empty_directories(tmp_path: Path) -> None:
    directory = tmp_path / "db.wake" / "broker"
    first, second = Listener(directory), Listener(directory)
    first.close()
    assert directory.exists()
    second.close()
    assert not (tmp_path / "db.wake").exists()
