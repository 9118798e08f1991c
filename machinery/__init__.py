"""machinery: a typed task queue. Tasks are sent as messages and run by workers, with chains,
callbacks, groups, chords, retries and delays."""

from __future__ import annotations

from machinery._speedups import USING_EXTENSIONS, decode, encode, parse_number_args
from machinery.app import App, init_app
from machinery.config import Config, load_config
from machinery.dead_letters import DeadLetter
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
from machinery.hooks import Delay, Hook, Hooks, Outcome, Skip, TaskCall, WorkerInfo
from machinery.jsonvalues import JSON, FrozenDict, JSONInput, JSONValue, freeze, plain, thaw
from machinery.periodic import Periodic, Schedule
from machinery.rate_limits import RateLimit
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
    "DeadLetter",
    "Periodic",
    "RateLimit",
    "Schedule",
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
    "Delay",
    "EncodeError",
    "FrozenDict",
    "FunctionTask",
    "Group",
    "GroupResult",
    "Hook",
    "Hooks",
    "JSON",
    "JSONInput",
    "JSONValue",
    "LimitExceeded",
    "MachineryError",
    "NoResult",
    "Outcome",
    "Registry",
    "ResultBackendError",
    "ResultTimeout",
    "ResultTypeError",
    "Retry",
    "Signature",
    "SignatureInvalid",
    "SoftTimeLimitExceeded",
    "SignatureOptions",
    "Skip",
    "Task",
    "TaskCall",
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
    "WorkerInfo",
]

for _name in ("ArgumentError", "BrokerError", "ConfigError", "DecodeError", "EncodeError", "MachineryError",
              "ResultBackendError", "ResultTimeout", "Retry", "TaskFailed", "TaskNotRegistered", "FrozenDict",
              "LimitExceeded", "SignatureInvalid", "SoftTimeLimitExceeded", "TimeLimitExceeded",
              "FunctionTask", "Registry", "Signature", "Task", "TaskResult", "TaskState", "Chain", "Chord",
              "Group", "App", "Config", "Worker", "AsyncResult", "ChainResult", "GroupResult", "ChordResult",
              "TaskFunction", "TypedSignature", "NoResult", "ResultTypeError", "Hook", "Hooks", "Skip", "Delay",
              "TaskCall", "Outcome", "WorkerInfo"):
    globals()[_name].__module__ = "machinery"
del _name
