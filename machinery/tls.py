"""TLS for ``amqps://`` and ``rediss://``: the ``tls_*`` settings of a Config turned into the
``ssl.SSLContext`` pika connects with and the options redis-py connects with.

One set of settings serves both servers: ``tls_ca_file`` may hold several CA certificates (one PEM
bundle) when RabbitMQ and Redis are signed by different CAs. Problems with the files are reported
when the broker or backend is opened, as a ``ConfigError`` naming the setting and the file.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING

from machinery.errors import ConfigError

if TYPE_CHECKING:
    from machinery.config import Config

__all__ = ["TLSSettings", "describe_tls_error"]


@dataclass(frozen=True, slots=True)
class TLSSettings:
    """How to verify the server and present ourselves. Empty strings mean "not set"."""

    ca_file: str = ""
    """PEM file of the CA certificates that may sign the server's certificate; empty: the system's CAs."""
    cert_file: str = ""
    """PEM file of the client certificate (for servers that require one), with its chain."""
    key_file: str = ""
    """PEM file of the client certificate's private key (unencrypted); empty: in ``cert_file``."""
    verify: bool = True
    """Check the server's certificate and name. False accepts any server: encryption without
    authentication, for tests and trusted networks only."""
    server_hostname: str = ""
    """The name the server's certificate must carry (and the SNI name sent); empty: the URL's host."""

    @classmethod
    def from_config(cls, config: Config) -> TLSSettings:
        return cls(
            ca_file=config.tls_ca_file,
            cert_file=config.tls_cert_file,
            key_file=config.tls_key_file,
            verify=config.tls_verify,
            server_hostname=config.tls_server_hostname,
        )

    def context(self) -> ssl.SSLContext:
        """A client context (TLS 1.2 or later) for these settings; ``ConfigError`` when a file
        cannot be read or does not hold what it should."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.ca_file:
            try:
                context.load_verify_locations(cafile=self.ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError("tls_ca_file", "a readable PEM file of CA certificates",
                                  source=f"{self.ca_file}: {_reason(exc)}") from None
        if self.key_file and not self.cert_file:
            raise ConfigError("tls_cert_file", "set when tls_key_file is (the certificate of that key)")
        if self.cert_file:
            try:
                context.load_cert_chain(self.cert_file, self.key_file or None)
            except (OSError, ssl.SSLError) as exc:
                where = self.cert_file if not self.key_file else f"{self.cert_file}, {self.key_file}"
                raise ConfigError("tls_cert_file", "a readable PEM certificate with its private key",
                                  source=f"{where}: {_reason(exc)}") from None
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def redis_options(self) -> dict[str, object]:
        """Keyword arguments for ``redis.Redis.from_url`` with a ``rediss://`` URL. The files are
        checked first (``context()``), so a bad one fails when the backend opens, not on first use.
        redis-py checks the URL's host against the certificate; ``server_hostname`` is AMQP's only."""
        self.context()
        options: dict[str, object] = {
            "ssl_cert_reqs": "required" if self.verify else "none",
            "ssl_check_hostname": self.verify,
            "ssl_min_version": ssl.TLSVersion.TLSv1_2,
        }
        if self.ca_file:
            options["ssl_ca_certs"] = self.ca_file
        if self.cert_file:
            options["ssl_certfile"] = self.cert_file
            options["ssl_keyfile"] = self.key_file or None
        return options


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__


def describe_tls_error(exc: BaseException) -> str | None:
    """One line saying why a TLS handshake failed (``certificate verify failed: ...``), found in
    ``exc`` or the exceptions it wraps (pika and redis-py wrap them); None if it was not TLS."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        text = str(current)
        if "CERTIFICATE_REQUIRED" in text:
            return "TLS: the server requires a client certificate (tls_cert_file)"
        if isinstance(current, ssl.SSLEOFError) or "SSLEOFError" in text:
            # TLS 1.3: a server refusing the client's certificate (or its absence) may just close.
            return "TLS: the server closed the connection during the handshake (is a client certificate required?)"
        if isinstance(current, ssl.SSLCertVerificationError):
            return f"TLS: server certificate not trusted ({current.verify_message or current.reason})"
        if isinstance(current, ssl.SSLError):
            return f"TLS handshake failed ({current.reason or current})"
        for attr in ("exceptions", "args", "exception"):  # pika's wrappers keep the cause in these
            value = getattr(current, attr, None)
            if isinstance(value, BaseException):
                todo.append(value)
            elif isinstance(value, (list, tuple)):
                todo.extend(v for v in value if isinstance(v, BaseException))
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                todo.append(linked)
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        return "TLS: server certificate not trusted"
    return None
