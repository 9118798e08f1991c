"""The layers of machinery, lowest first, and the modules and packages in each.

A module imports only modules of its own layer and of the layers before it: core has no I/O and
imports nothing else of machinery; the hot path builds on core; transport moves bytes and keeps
states on top of both; the runtime wires everything together. Within transport, what brokers and
backends share (``schemes``, the SQLite plumbing ``sqlite``, the TLS settings ``tls``) sits below
them, and they do not import each other.
``tests/core/test_layers.py`` checks every import of every module against this table (and that
each module is in it, and that ARCHITECTURE.md's table says the same).
"""

from __future__ import annotations

__all__ = ["LAYERS"]

#: Layer name -> the top-level modules (``name``) and packages (``name/``) of ``machinery`` in it.
LAYERS: dict[str, tuple[str, ...]] = {
    "core": ("errors", "jsonvalues", "signature", "task", "registry", "workflows", "states", "config", "layers",
             "conversion", "urls", "timelimits", "limits", "signing"),
    "hot path": ("_speedups/", "gowire"),
    "transport": ("schemes", "sqlite/", "tls", "brokers/", "backends/"),
    "runtime": ("hooks", "app", "task_function", "routing", "unregistered", "worker", "foreground", "execution",
                "outcomes", "settling", "watchdog", "progress", "leases", "result", "cli", "supervisor", "demo",
                "demo_tasks", "demo_run", "__main__", "heartbeat", "locations", "version", "metrics", "events/",
                "dashboard/", "cli_args", "cli_observe", "tracing", "dead_letters", "cli_dead", "revoke", "cli_control",
                "rate_limits", "periodic", "beat"),
}
