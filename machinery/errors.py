"""Every error machinery raises, each carrying what a caller needs to act on it."""

from __future__ import annotations

__all__ = [
    "ArgumentError",
    "BrokerError",
    "ConfigError",
    "DecodeError",
    "EncodeError",
    "LimitExceeded",
    "MachineryError",
    "ResultBackendError",
    "ResultTimeout",
    "ResultTypeError",
    "Retry",
    "SignatureInvalid",
    "SoftTimeLimitExceeded",
    "TaskFailed",
    "TaskNotRegistered",
    "TimeLimitExceeded",
]


class MachineryError(Exception):
    """Base class of every error raised by machinery."""


class DecodeError(MachineryError, ValueError):
    """Bytes that are not a valid task message: bad UTF-8, bad JSON, wrong schema, too deep."""


class EncodeError(MachineryError, ValueError):
    """A signature that cannot be written as JSON: NaN, infinity, lone surrogate, non-JSON value."""


class ArgumentError(MachineryError, TypeError):
    """A task argument of the wrong type; the message names its position and the type it had."""

    def __init__(self, message: str, *, position: int | None = None) -> None:
        super().__init__(message)
        self.position = position


class ConfigError(MachineryError, ValueError):
    """A configuration value that is missing or malformed; names the key and what was expected."""

    def __init__(self, key: str, expected: str, got: object = None, *, source: str = "") -> None:
        where = f" (from {source})" if source else ""
        got_text = "" if got is None else f", got {got!r}"
        super().__init__(f"config {key}{where}: expected {expected}{got_text}")
        self.key = key
        self.expected = expected


class TaskNotRegistered(MachineryError, LookupError):
    """A task name that no registry here knows."""

    def __init__(self, name: str) -> None:
        super().__init__(f"task {name!r} is not registered")
        self.name = name


class BrokerError(MachineryError):
    """The broker refused a message or could not be reached after bounded retries."""


class ResultBackendError(MachineryError):
    """The result backend could not store or read a task's state."""


class TaskFailed(MachineryError):
    """A task failed for good; ``error`` is the error text its worker recorded."""

    def __init__(self, task_uuid: str, error: str, *, name: str = "") -> None:
        label = f"{name} " if name else ""
        super().__init__(f"task {label}{task_uuid} failed: {error}")
        self.task_uuid = task_uuid
        self.error = error
        self.name = name


class ResultTimeout(MachineryError, TimeoutError):
    """No final state arrived for a task within the time a caller was willing to wait."""

    def __init__(self, task_uuid: str, timeout: float, *, hint: str = "") -> None:
        message = f"task {task_uuid} did not finish within {timeout:g}s"
        super().__init__(f"{message}; {hint}" if hint else message)
        self.task_uuid = task_uuid
        self.timeout = timeout
        self.hint = hint
        """What the result store says about the workers (none seen, none alive, the live one's broker)."""


class Retry(MachineryError):
    """Raised by a task to ask for another try after ``countdown`` seconds (or the signature's
    back-off when ``countdown`` is None)."""

    def __init__(self, reason: str = "retry requested", *, countdown: float | None = None) -> None:
        super().__init__(reason)
        self.countdown = countdown


class ResultTypeError(MachineryError, TypeError):
    """A stored result that does not fit the return type its task declares (a worker running other
    code than the caller's, say)."""

    def __init__(self, task_uuid: str, expected: str, detail: str) -> None:
        super().__init__(f"task {task_uuid}: result is not {expected} ({detail})")
        self.task_uuid = task_uuid
        self.expected = expected


class SoftTimeLimitExceeded(MachineryError):
    """Raised inside a task that ran past its ``soft_time_limit``; the task may catch it to clean up.
    Uncaught, the task fails with it like with any other exception."""


class TimeLimitExceeded(MachineryError):
    """A task ran past its hard ``time_limit``: it is recorded as a ``FAILURE`` with this error's name
    in its text, and its thread is abandoned (or its worker process replaced)."""


class LimitExceeded(MachineryError, ValueError):
    """A message is larger than ``max_message_bytes``, or would create more messages than
    ``max_fanout``; it is refused when sent and dead-lettered when received."""


class SignatureInvalid(MachineryError):
    """A message is not signed, or not signed with any of ``signing_keys``."""
