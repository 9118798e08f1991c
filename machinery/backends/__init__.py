"""Result backends and ``open_backend``, which picks one by the scheme of ``Config.result_backend``."""

from __future__ import annotations

from typing import cast

from machinery.backends.base import ResultBackend
from machinery.config import Config
from machinery.schemes import open_by_scheme

__all__ = ["ResultBackend", "open_backend"]


#: scheme -> (module, class); imported only when used, so redis stays optional.
_BACKENDS = {
    "memory": ("machinery.backends.memory", "MemoryBackend"),
    "sqlite": ("machinery.backends.sqlite", "SQLiteBackend"),
    "redis": ("machinery.backends.redis", "RedisBackend"),
    "rediss": ("machinery.backends.redis", "RedisBackend"),
}
#: With ``wire_format: go``, Redis keeps states in Go Machinery v1's layout.
_GO_BACKENDS = {
    **_BACKENDS,
    "redis": ("machinery.backends.redis_go", "GoRedisBackend"),
    "rediss": ("machinery.backends.redis_go", "GoRedisBackend"),
}


def open_backend(config: Config) -> ResultBackend | None:
    """The result backend ``config.result_backend`` names, or None for ``none`` (results are not
    stored): ``memory://[name]`` (shared per name in this process), ``sqlite:///path``, ``redis://``
    (in Go Machinery v1's layout when ``config.wire_format`` is ``"go"``)."""
    if config.result_backend == "none":
        return None
    expected = 'a memory://, sqlite:// or redis:// URL, or "none"'
    table = _GO_BACKENDS if config.wire_format == "go" else _BACKENDS
    return cast(ResultBackend, open_by_scheme(config, "result_backend", table, expected))
