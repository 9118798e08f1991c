"""Transports chosen by URL scheme: ``open_by_scheme`` imports the class a scheme names on first
use (so pika and redis stay optional) and builds it from the config; ``SharedByName`` keeps the
``memory://<name>`` instances, one per name in this process.

``brokers.open_broker`` and ``backends.open_backend`` are this with their own tables.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Mapping
from typing import Generic, Protocol, TypeVar, cast

from machinery.config import Config
from machinery.errors import BrokerError, ConfigError, ResultBackendError
from machinery.urls import masked_url

__all__ = ["SharedByName", "open_by_scheme"]

#: The optional dependency -> the extra that installs it.
_EXTRAS = {"pika": "amqp", "redis": "redis"}

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class _FromConfig(Protocol[T_co]):
    def from_config(self, config: Config, /) -> T_co: ...


def open_by_scheme(config: Config, field: str, table: Mapping[str, tuple[str, str]], expected: str) -> object:
    """What ``config.<field>``'s scheme names in ``table`` (scheme -> (module, class)), built with
    the class's ``from_config``. An unknown scheme is a ``ConfigError`` saying
    ``expected``. A class whose module cannot be imported (its support is not installed) is a
    ``BrokerError`` or ``ResultBackendError`` naming the package and the extra that installs it."""
    url = str(getattr(config, field))
    target = table.get(url.partition("://")[0])
    if target is None:
        raise ConfigError(field, expected, masked_url(url))
    module_name, class_name = target
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        missing = (exc.name or module_name).partition(".")[0]
        extra = _EXTRAS.get(missing)
        how = f" (pip install 'machinery[{extra}]')" if extra else ""
        error = BrokerError if field == "broker_url" else ResultBackendError
        raise error(f"{masked_url(url)} needs {missing}, which is not installed{how}") from None
    maker = cast(_FromConfig[object], getattr(module, class_name))
    return maker.from_config(config)


class SharedByName(Generic[T]):
    """Instances shared by name within this process, made on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, T] = {}

    def get(self, name: str, make: Callable[[], T]) -> T:
        """The instance called ``name``; ``make()`` builds it the first time."""
        with self._lock:
            item = self._items.get(name)
            if item is None:
                item = self._items[name] = make()
            return item
