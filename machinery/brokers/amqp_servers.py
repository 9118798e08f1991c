"""The RabbitMQ servers one broker URL names, and which of them to connect to next.

``broker_url`` may list several servers separated by ``;`` (``amqp://a:5672/;amqp://b:5672/``), the
nodes of one cluster: the connection opens to the first; when a connect fails or an open connection
is lost, the next one in the list is tried (then the first again), so producers and workers move to
a node that is still up. What was published but not confirmed is published again on the new
connection and unacknowledged deliveries come back, as after any reconnect. Use quorum (or mirrored)
queues so the messages themselves survive the node (``queue_declare_args: {"x-queue-type": "quorum"}``).

``amqps://`` URLs connect with the TLS settings of the Config (``machinery.tls``).
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

import pika

from machinery.errors import BrokerError
from machinery.tls import TLSSettings
from machinery.urls import masked_url

__all__ = ["AMQPServers"]


class AMQPServers:
    """The servers of ``url`` as pika connection parameters, with a cursor on the one to use."""

    def __init__(self, url: str, tls: TLSSettings | None = None) -> None:
        urls = [part.strip() for part in url.split(";")]
        if not all(urls):
            raise BrokerError(f"empty server in AMQP URL list {masked_url(url)}")
        settings = tls or TLSSettings()
        context = None
        self._params: list[pika.URLParameters] = []
        self._safe_urls: list[str] = []
        self._passwords: list[str] = []
        for one in urls:
            safe = masked_url(one)
            scheme = one.partition("://")[0].lower()
            if scheme not in ("amqp", "amqps"):
                raise BrokerError(f"not an AMQP URL: {safe}")
            try:
                params = pika.URLParameters(one)
                password = unquote(urlsplit(one).password or "")
            except Exception as exc:  # the parser's own message may quote the URL: never shown
                raise BrokerError(f"bad AMQP URL {safe}: {type(exc).__name__}") from None
            if scheme == "amqps":
                context = context or settings.context()
                params.ssl_options = pika.SSLOptions(context, server_hostname=settings.server_hostname or params.host)
            params.connection_attempts = 1
            self._params.append(params)
            self._safe_urls.append(safe)
            if len(password) > 2 and password not in self._passwords:
                self._passwords.append(password)
        self._index = 0

    @property
    def safe_url(self) -> str:
        """All the URLs, passwords masked, as given (``;``-separated)."""
        return ";".join(self._safe_urls)

    def __len__(self) -> int:
        return len(self._params)

    @property
    def current(self) -> pika.URLParameters:
        """Parameters of the server to connect to now."""
        return self._params[self._index]

    @property
    def current_url(self) -> str:
        """The URL of ``current``, password masked."""
        return self._safe_urls[self._index]

    def advance(self) -> None:
        """Move on to the next server in the list (after the last, the first)."""
        self._index = (self._index + 1) % len(self._params)

    def passwords(self) -> list[str]:
        """The passwords written in the URLs (to scrub from error texts)."""
        return list(self._passwords)
