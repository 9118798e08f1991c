"""Masking secrets in URLs: the one masker used by every error message, log line and repr.

``masked_url`` does not trust the URL to be well formed. A password typed with an unescaped
``#``, ``?``, ``/``, ``@`` or ``:`` fools a standard URL parser (``urlsplit`` stops the authority
at the first ``/``, ``?`` or ``#``, so the password's tail becomes a path or a fragment), so the
rules here are deliberately greedy; they may hide more than the password, never less:

- userinfo: when there is an ``@`` after ``scheme://`` (the LAST ``@`` in the whole string is taken
  as the end of the userinfo) and a ``:`` before it, everything from that first ``:`` to that last
  ``@`` becomes ``***`` (``amqp://guest:***@host/``, ``redis://:***@host/0``). A URL whose authority
  is empty (``sqlite:///path``) has no userinfo.
- a ``;``-separated list of URLs (a broker list) is masked URL by URL.
- query: from the first query parameter whose name looks secret (``password``, ``pass``, ``pwd``,
  ``secret``, ``token``, ``key``, ``auth``, ``credential`` in any case, as part of the name), the
  rest of the URL becomes ``***`` (``redis://host/0?db=1&password=***``): a value cannot be fooled
  into ending early by an unescaped ``&`` or ``#``.
"""

from __future__ import annotations

import re

__all__ = ["MASK", "masked_url"]

#: What replaces a secret.
MASK = "***"

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
_SECRET_PARAM = re.compile(r"(?:^|[?&;])([^=&;?#]*(?:pass|pwd|secret|token|key|auth|credential)[^=&;?#]*)=",
                           re.IGNORECASE)


def _userinfo_secret(rest: str) -> tuple[int, int] | None:
    """Where the password of ``rest``'s userinfo lies (``rest`` is what follows ``scheme://``)."""
    if rest.startswith("/"):
        return None  # empty authority (sqlite:///path): no userinfo
    at = rest.rfind("@")
    if at == -1:
        return None
    colon = rest.find(":", 0, at)
    if colon == -1:
        return None
    return colon + 1, at


def _query_secret(rest: str) -> tuple[int, int] | None:
    """From the value of the first secret-looking query parameter of ``rest`` to its end."""
    q = rest.find("?")
    if q == -1:
        return None
    match = _SECRET_PARAM.search(rest, q)
    if match is None:
        return None
    return match.end(), len(rest)


def masked_url(url: str) -> str:
    """``url`` with its password (in the userinfo or in a query parameter) replaced by ``***``.

    Safe on anything: a string that is not a URL comes back unchanged unless it looks like one
    with a secret, and the result never contains the password, however the URL was written.
    """
    pieces = url.split(";")
    if len(pieces) > 1 and all(_SCHEME.match(p.strip()) for p in pieces[1:]):
        return ";".join(masked_url(p) for p in pieces)  # a broker list: each URL masked on its own
    match = _SCHEME.match(url)
    start = 0 if match is None else match.end()
    rest = url[start:]
    # Both rules read the original text and every span they find is hidden, so a "?" typed in a
    # password cannot end the userinfo early, nor an "@" typed in a query password move it.
    spans = sorted(span for span in (_userinfo_secret(rest), _query_secret(rest)) if span is not None)
    if not spans:
        return url
    out = [url[:start]]
    pos = 0
    for begin, end in spans:
        if end <= pos:
            continue
        out.append(rest[pos:max(begin, pos)])
        out.append(MASK)
        pos = end
    out.append(rest[pos:])
    return "".join(out)
