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


def open_backend(config: Config) -> ResultBackend | None:
    """The result backend ``config.result_backend`` names, or None for ``none`` (results are not
    stored): ``memory://[name]`` (shared per name in this process), ``sqlite:///path``, ``redis://``."""
    if config.result_backend == "none":
        return None
    expected = 'a memory://, sqlite:// or redis:// URL, or "none"'
    return cast(ResultBackend, open_by_scheme(config, "result_backend", _BACKENDS, expected))
