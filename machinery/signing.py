"""Signed messages: an HMAC-SHA256 of each message's body in a broker header.

With ``signing_keys`` set, producers (and workers sending follow-ups) add
``x-machinery-signature: sha256=<hex>`` made with the first key; workers accept a message whose
signature matches any of the keys (so keys can be rotated: add the new key second, then first once
every producer has it, then drop the old one) and dead-letter the rest, unsigned or badly signed,
with the reason. Comparisons take constant time (``hmac.compare_digest``). Keys are never logged or
shown in a repr.

It protects against someone who can publish to the queues but does not hold a key: they cannot
have a worker run a task call of their own, nor alter one in flight. It does not hide message
contents (use TLS and broker permissions), does not stop a valid message from being replayed
(tasks should be idempotent), and cannot help once a key holder (a worker or producer) is
compromised.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence

__all__ = ["SIGNATURE_HEADER", "Signer"]

#: Broker header that carries a message's signature.
SIGNATURE_HEADER = "x-machinery-signature"
_PREFIX = "sha256="


class Signer:
    """Signs message bodies with the first of ``keys`` and verifies them against all of them."""

    __slots__ = ("_keys",)

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("a Signer needs at least one key")
        self._keys = tuple(k.encode("utf-8") for k in keys)

    def __repr__(self) -> str:
        return f"<Signer with {len(self._keys)} key(s)>"

    def sign(self, body: bytes) -> str:
        """The signature header value for ``body``."""
        return _PREFIX + hmac.new(self._keys[0], body, hashlib.sha256).hexdigest()

    def headers(self, body: bytes) -> dict[str, str]:
        """The headers that sign ``body``."""
        return {SIGNATURE_HEADER: self.sign(body)}

    def check(self, headers: Mapping[str, str], body: bytes) -> str:
        """Why ``body`` with ``headers`` is not validly signed ("" when it is)."""
        value = headers.get(SIGNATURE_HEADER)
        if value is None:
            return "unsigned message (signing_keys are set)"
        if not isinstance(value, str) or not value.startswith(_PREFIX):
            return "bad message signature (not an HMAC-SHA256)"
        given = value[len(_PREFIX):].encode("ascii", "replace")
        ok = False
        for key in self._keys:  # every key is tried, whatever matched: no timing hint of which
            ok |= hmac.compare_digest(hmac.new(key, body, hashlib.sha256).hexdigest().encode("ascii"), given)
        return "" if ok else "bad message signature (no signing key matches)"
