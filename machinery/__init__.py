"""machinery: a typed task queue. Tasks are sent as messages and run by workers, with chains,
callbacks, groups, chords, retries and delays."""

from __future__ import annotations

from machinery._speedups import USING_EXTENSIONS, decode, encode, parse_number_args
from machinery.errors import (
    ArgumentError,
    BrokerError,
    ConfigError,
    DecodeError,
    EncodeError,
    MachineryError,
    ResultBackendError,
    ResultTimeout,
    Retry,
    TaskFailed,
    TaskNotRegistered,
)
from machinery.jsonvalues import FrozenDict, JSONInput, JSONValue, freeze, thaw
from machinery.registry import Registry
from machinery.signature import Signature, new_task_id
from machinery.states import TaskResult, TaskState
from machinery.task import FunctionTask, Task
from machinery.workflows import Chain, Chord, Group, chain, chord, group

__version__ = "0.1.0"

__all__ = [
    "USING_EXTENSIONS",
    "ArgumentError",
    "BrokerError",
    "Chain",
    "Chord",
    "ConfigError",
    "DecodeError",
    "EncodeError",
    "FrozenDict",
    "FunctionTask",
    "Group",
    "JSONInput",
    "JSONValue",
    "MachineryError",
    "Registry",
    "ResultBackendError",
    "ResultTimeout",
    "Retry",
    "Signature",
    "Task",
    "TaskFailed",
    "TaskNotRegistered",
    "TaskResult",
    "TaskState",
    "chain",
    "chord",
    "decode",
    "encode",
    "freeze",
    "group",
    "new_task_id",
    "parse_number_args",
    "thaw",
]

for _name in ("ArgumentError", "BrokerError", "ConfigError", "DecodeError", "EncodeError", "MachineryError",
              "ResultBackendError", "ResultTimeout", "Retry", "TaskFailed", "TaskNotRegistered", "FrozenDict",
              "FunctionTask", "Registry", "Signature", "Task", "TaskResult", "TaskState", "Chain", "Chord",
              "Group"):
    globals()[_name].__module__ = "machinery"
del _name
