"""Result backends and ``open_backend``, which picks one by the scheme of ``Config.result_backend``."""

from __future__ import annotations

import importlib
from typing import Protocol, cast

from machinery.backends.base import ResultBackend
from machinery.config import Config
from machinery.errors import ConfigError
from machinery.urls import masked_url

__all__ = ["ResultBackend", "open_backend"]


class _BackendClass(Protocol):
    def from_config(self, config: Config, /) -> ResultBackend: ...


#: scheme -> (module, class); imported only when used, so redis stays optional.
_BACKENDS = {
    "sqlite": ("machinery.backends.sqlite", "SQLiteBackend"),
    "redis": ("machinery.backends.redis", "RedisBackend"),
    "rediss": ("machinery.backends.redis", "RedisBackend"),
}


def open_backend(config: Config) -> ResultBackend | None:
    """The result backend ``config.result_backend`` names, or None for ``none`` (results are not
    stored): ``memory://[name]`` (shared per name in this process), ``sqlite:///path``, ``redis://``."""
    url = config.result_backend
    if url == "none":
        return None
    scheme, _, rest = url.partition("://")
    if scheme == "memory":
        from machinery.backends.memory import MemoryBackend

        return MemoryBackend.named(rest, expires_in=float(config.results_expire_in))
    target = _BACKENDS.get(scheme)
    if target is None:
        raise ConfigError("result_backend", 'a memory://, sqlite:// or redis:// URL, or "none"', masked_url(url))
    module_name, class_name = target
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError("result_backend", f"a backend whose support is installed ({exc})", masked_url(url)) from None
    cls = cast(_BackendClass, getattr(module, class_name))
    return cls.from_config(config)
