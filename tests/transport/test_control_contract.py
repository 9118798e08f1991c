"""Revocations, token buckets and leases (``ControlStore``) on every result backend: what one
client writes, another client of the same store sees."""

from __future__ import annotations

import time

from machinery.backends.base import ResultBackend
from machinery.backends.control import Claim, ControlStore, control_store
from tests.transport.conftest import MakeBackend


def _control(backend: ResultBackend) -> ControlStore:
    control = control_store(backend)
    assert control is not None, f"{backend!r} has no control store"
    return control


def test_a_revocation_reaches_other_clients_until_it_expires(make_backend: MakeBackend, token: str) -> None:
    first, second = _control(make_backend()), _control(make_backend())
    first.revoke(f"task_{token}_a", "not wanted", 60.0)
    first.revoke(f"task_{token}_b", "soon gone", 0.2)
    seen = second.revocations()
    assert seen[f"task_{token}_a"] == "not wanted"
    assert seen[f"task_{token}_b"] == "soon gone"
    time.sleep(0.4)
    seen = second.revocations()
    assert f"task_{token}_b" not in seen and f"task_{token}_a" in seen


def test_a_bucket_is_shared_and_refills_at_its_rate(make_backend: MakeBackend, token: str) -> None:
    first, second = _control(make_backend()), _control(make_backend())
    key = f"bucket-{token}"
    assert first.take_token(key, 2.0, 2.0) == 0.0
    assert second.take_token(key, 2.0, 2.0) == 0.0
    wait = first.take_token(key, 2.0, 2.0)
    assert 0.2 < wait <= 0.5
    time.sleep(wait + 0.05)
    assert second.take_token(key, 2.0, 2.0) == 0.0


def test_a_lease_is_held_by_one_owner_taken_over_when_it_expires_and_done_for_all(
    make_backend: MakeBackend, token: str
) -> None:
    first, second = _control(make_backend()), _control(make_backend())
    key = f"lease-{token}"
    assert first.claim(key, "a", 0.3) is Claim.MINE
    assert second.claim(key, "b", 0.3) is Claim.HELD
    assert first.claim(key, "a", 0.3) is Claim.MINE
    time.sleep(0.45)
    assert second.claim(key, "b", 5.0) is Claim.MINE
    first.complete(key, "a", 5.0)  # not the holder any more: no effect
    assert first.claim(key, "a", 5.0) is Claim.HELD
    second.complete(key, "b", 5.0)
    assert first.claim(key, "a", 5.0) is Claim.DONE
    assert second.claim(key, "b", 5.0) is Claim.DONE
