"""Where a broker or result store lives, said so that two processes can tell whether they share it:
URLs with the password masked and SQLite paths made absolute (a relative path means a different
file in each working directory)."""

from __future__ import annotations

import os

from machinery.urls import masked_url

__all__ = ["describe_url"]


def describe_url(url: str) -> str:
    """``url`` for logs and errors: masked, with a relative ``sqlite:///path`` made absolute
    against the working directory (``sqlite:////abs/path``)."""
    scheme, sep, rest = url.partition("://")
    if scheme == "sqlite" and sep and rest.startswith("/") and not rest.startswith("//"):
        file_part, mark, query = rest[1:].partition("?")
        if file_part and file_part != ":memory:":
            return f"sqlite:///{os.path.abspath(file_part)}{mark}{query}"
    return masked_url(url)
