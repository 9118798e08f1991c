"""Why an AMQP connection could not be opened, in one line: pika reports it as nested workflow
exceptions (``AMQPConnectionError(AMQPConnectionWorkflowFailed(..., AMQPConnectorSocketConnectError(
ConnectionRefusedError)))``) whose text hides the cause; this finds the innermost one and names it."""

from __future__ import annotations

import socket
import ssl

from pika import exceptions as pika_errors

__all__ = ["connect_failure", "root_cause"]


def root_cause(exc: BaseException) -> BaseException:
    """The innermost exception under pika's connection workflow wrappers."""
    seen: set[int] = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        inner: object = None
        nested = getattr(exc, "exceptions", None)
        if isinstance(nested, (list, tuple)) and nested:
            inner = nested[-1]
        elif isinstance(getattr(exc, "exception", None), BaseException):
            inner = exc.exception  # type: ignore[attr-defined]
        elif exc.args and isinstance(exc.args[0], BaseException):
            inner = exc.args[0]
        elif exc.__cause__ is not None:
            inner = exc.__cause__
        if not isinstance(inner, BaseException):
            break
        exc = inner
    return exc


def connect_failure(exc: BaseException, host: str, port: int) -> str:
    """One line saying why connecting to ``host:port`` failed, e.g.
    ``connection refused to 127.0.0.1:5673 (is RabbitMQ running there?)``."""
    where = f"{host}:{port}"
    cause = root_cause(exc)
    if isinstance(cause, ConnectionRefusedError):
        return f"connection refused to {where} (is RabbitMQ running there?)"
    if isinstance(cause, socket.gaierror):
        return f"cannot resolve the host {host!r} ({cause.strerror or cause})"
    if isinstance(cause, (TimeoutError, socket.timeout)):
        return f"connecting to {where} timed out"
    if isinstance(cause, pika_errors.ProbableAuthenticationError):
        return f"login refused by {where} (check the user name and password)"
    if isinstance(cause, pika_errors.ProbableAccessDeniedError):
        return f"access refused by {where} (check the virtual host and its permissions): {_server_text(cause)}"
    if isinstance(cause, ssl.SSLError):
        return f"TLS handshake with {where} failed: {getattr(cause, 'reason', None) or cause}"
    if isinstance(cause, pika_errors.ConnectionOpenAborted):
        return f"{where} did not complete the AMQP handshake (is it a RabbitMQ port?)"
    if isinstance(cause, OSError) and cause.strerror:
        return f"cannot connect to {where}: {cause.strerror}"
    text = str(cause).strip()
    return f"cannot connect to {where}: {type(cause).__name__}" + (f": {text}" if text else "")


def _server_text(exc: BaseException) -> str:
    text = str(exc.args[0]) if exc.args else str(exc)
    start = text.find("'")
    return text[start + 1 : text.rfind("'")] if 0 <= start < text.rfind("'") else text
