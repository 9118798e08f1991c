"""machinery: a typed task queue. Tasks are sent as messages and run by workers, with chains,
callbacks, groups, chords, retries and delays."""

from __future__ import annotations

from machinery._speedups import USING_EXTENSIONS, decode, encode, parse_number_args
from machinery.app import App, init_app
from machinery.config import Config, load_config
from machinery.errors import (
    ArgumentError,
    BrokerError,
    ConfigError,
    DecodeError,
    EncodeError,
    LimitExceeded,
    MachineryError,
    ResultBackendError,
    ResultTimeout,
    ResultTypeError,
    Retry,
    SignatureInvalid,
    SoftTimeLimitExceeded,
    TaskFailed,
    TaskNotRegistered,
    TimeLimitExceeded,
)
from machinery.jsonvalues import JSON, FrozenDict, JSONInput, JSONValue, freeze, plain, thaw
from machinery.registry import Registry
from machinery.result import AsyncResult, ChainResult, ChordResult, GroupResult
from machinery.signature import Signature, SignatureOptions, new_task_id
from machinery.states import TaskResult, TaskState
from machinery.task import FunctionTask, Task
from machinery.task_function import TaskFunction
from machinery.urls import masked_url
from machinery.version import __version__ as __version__
from machinery.worker import Worker
from machinery.workflows import Chain, Chord, Group, NoResult, TypedSignature, chain, chord, group

__all__ = [
    "USING_EXTENSIONS",
    "App",
    "ArgumentError",
    "AsyncResult",
    "BrokerError",
    "Chain",
    "ChainResult",
    "Chord",
    "ChordResult",
    "Config",
    "ConfigError",
    "DecodeError",
    "EncodeError",
    "FrozenDict",
    "FunctionTask",
    "Group",
    "GroupResult",
    "JSON",
    "JSONInput",
    "JSONValue",
    "LimitExceeded",
    "MachineryError",
    "NoResult",
    "Registry",
    "ResultBackendError",
    "ResultTimeout",
    "ResultTypeError",
    "Retry",
    "Signature",
    "SignatureInvalid",
    "SoftTimeLimitExceeded",
    "SignatureOptions",
    "Task",
    "TaskFailed",
    "TaskFunction",
    "TaskNotRegistered",
    "TaskResult",
    "TaskState",
    "TimeLimitExceeded",
    "TypedSignature",
    "chain",
    "chord",
    "decode",
    "encode",
    "freeze",
    "group",
    "new_task_id",
    "parse_number_args",
    "plain",
    "thaw",
    "init_app",
    "load_config",
    "masked_url",
    "Worker",
]

for _name in ("ArgumentError", "BrokerError", "ConfigError", "DecodeError", "EncodeError", "MachineryError",
              "ResultBackendError", "ResultTimeout", "Retry", "TaskFailed", "TaskNotRegistered", "FrozenDict",
              "LimitExceeded", "SignatureInvalid", "SoftTimeLimitExceeded", "TimeLimitExceeded",
              "FunctionTask", "Registry", "Signature", "Task", "TaskResult", "TaskState", "Chain", "Chord",
              "Group", "App", "Config", "Worker", "AsyncResult", "ChainResult", "GroupResult", "ChordResult",
              "TaskFunction", "TypedSignature", "NoResult", "ResultTypeError"):
    globals()[_name].__module__ = "machinery"
del _name
