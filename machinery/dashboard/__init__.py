"""``machinery dashboard``: a small read-only web page of live workers, queue depths, recent tasks
with their states and durations, throughput over time and dead letters.

It follows the event channel (a ``Follower`` feeding a ``Monitor``), reads queue depths from the
broker and fills in what events cannot tell from the result store: the result of a succeeded task,
and the state of a task whose worker publishes no events. The page (``index.html``, no external
resources) asks ``api/state`` for a JSON snapshot every two seconds. Stdlib ``http.server`` only.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources

from machinery.app import App
from machinery.config import masked_url
from machinery.events import Monitor, TaskView
from machinery.events.tail import Follower
from machinery.jsonvalues import thaw
from machinery.states import TaskResult, TaskState

__all__ = ["Dashboard"]

log = logging.getLogger("machinery.dashboard")

#: Tasks shown on the page.
TASKS_SHOWN = 50
#: Longest result text shown for a task.
RESULT_CHARS = 200
_NOT_FINAL = frozenset({"SENT", "RECEIVED", "STARTED", "REQUEUED", "RETRY"})


def _page() -> bytes:
    return resources.files(__name__).joinpath("index.html").read_bytes()


class Dashboard:
    """Serves the page for ``app``'s broker and result store at ``http://host:port/``; events of the
    last ``history`` seconds are shown at once where the broker keeps them (SQLite)."""

    def __init__(
        self,
        app: App,
        *,
        host: str = "127.0.0.1",
        port: int = 8181,
        queues: list[str] | None = None,
        history: float = 600.0,
        window: float = 300.0,
        bucket: float = 5.0,
    ) -> None:
        self.app = app
        self.extra_queues = list(queues or [])
        self.monitor = Monitor(window=window, bucket=bucket)
        self.follower = Follower(app.config, self.monitor, history=history)
        self._stored: OrderedDict[str, TaskResult] = OrderedDict()
        self._page = _page()
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="machinery-dashboard", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/"

    def start(self) -> Dashboard:
        self.follower.start()
        self._thread.start()
        log.info("dashboard at %s", self.url)
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self.follower.stop()

    # -- the snapshot -------------------------------------------------------------------------

    def _from_store(self, view: TaskView) -> TaskResult | None:
        """The result store's record of ``view``'s task (final ones are kept, not read again)."""
        stored = self._stored.get(view.uuid)
        if stored is not None:
            return stored
        backend = self.app.backend
        if backend is None:
            return None
        try:
            record = backend.get(view.uuid)
        except Exception as exc:
            log.warning("dashboard: reading %s from the result store failed: %s", view.uuid, exc)
            return None
        if record is not None and record.state.is_final:
            self._stored[view.uuid] = record
            while len(self._stored) > 4 * TASKS_SHOWN:
                self._stored.popitem(last=False)
        return record

    def _task(self, view: TaskView) -> dict[str, object]:
        state, error, result = view.state, view.error, ""
        record = self._from_store(view) if view.state in _NOT_FINAL or view.state == "SUCCESS" else None
        if record is not None:
            if view.state in _NOT_FINAL and record.state is not TaskState.PENDING:
                state = record.state.value
                error = error or record.error
            if record.state is TaskState.SUCCESS:
                result = json.dumps(thaw(record.result), ensure_ascii=False)[:RESULT_CHARS]
        return {
            "uuid": view.uuid, "name": view.name, "state": state, "queue": view.queue, "worker": view.worker,
            "duration": view.duration, "error": error, "result": result, "updated": view.updated,
        }

    def state(self) -> dict[str, object]:
        """What the page shows, as JSON-ready values."""
        now = time.time()
        monitor = self.monitor
        workers = monitor.workers(now)
        tasks = monitor.tasks(TASKS_SHOWN)
        names = {self.app.config.default_queue, *self.extra_queues, *(q for w in workers for q in w.queues)}
        names.update(t.queue for t in tasks if t.queue)
        queues = []
        for name in sorted(names):
            try:
                d = self.app.broker.depth(name)
            except Exception as exc:
                log.warning("dashboard: reading the depth of %s failed: %s", name, exc)
                continue
            queues.append({"queue": d.queue, "ready": d.ready, "delayed": d.delayed, "in_flight": d.in_flight,
                           "dead": d.dead})
        return {
            "now": now,
            "broker": masked_url(self.app.config.broker_url),
            "events": {"seen": monitor.events_seen, "error": self.follower.error},
            "workers": [
                {"name": w.name, "queues": list(w.queues), "concurrency": w.concurrency, "processed": w.processed,
                 "running": [{"uuid": r.uuid, "name": r.name, "seconds": max(0.0, now - r.started)}
                             for r in w.running]}
                for w in workers
            ],
            "queues": queues,
            "tasks": [self._task(t) for t in tasks],
            "throughput": {"bucket": monitor.bucket, "points": monitor.throughput(now)},
            "dead_letters": [
                {"timestamp": d.timestamp, "queue": d.queue, "reason": d.reason, "uuid": d.uuid, "name": d.name}
                for d in monitor.dead_letters()
            ],
        }

    # -- HTTP ---------------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        dashboard = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "machinery-dashboard"

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path in ("/", "/index.html"):
                    self._send(200, "text/html; charset=utf-8", dashboard._page)
                elif path == "/api/state":
                    try:
                        body = json.dumps(dashboard.state()).encode()
                    except Exception as exc:
                        log.exception("dashboard: building the page's state failed")
                        self._send(500, "application/json", json.dumps({"error": str(exc)}).encode())
                        return
                    self._send(200, "application/json", body)
                else:
                    self._send(404, "text/plain; charset=utf-8", b"not found\n")

            def _send(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.send_header("X-Content-Type-Options", "nosniff")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                log.debug("%s %s", self.address_string(), format % args)

        return Handler
