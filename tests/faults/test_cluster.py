"""A 3-node RabbitMQ cluster of the test's own on loopback (own node names, ports, distribution
ports and data directories; one Erlang cookie through a shared temporary HOME), quorum queues,
and one node killed with SIGKILL while producers and workers run: nothing may be lost. Clients are
given all three nodes (``amqp://a;amqp://b;amqp://c``) and move to another when theirs dies."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from machinery import Config
from machinery.jsonvalues import freeze_mapping
from tests.faults.load import run_load
from tests.faults.own_servers import RabbitNode

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RabbitNode]]:
    base = tmp_path_factory.mktemp("rabbit-cluster")
    home = base / "home"
    nodes = [RabbitNode(base / f"node{i}", f"machinery-c{i}", home=home) for i in range(3)]
    try:
        nodes[0].start()  # first alone: it writes the cookie the others then share
        for node in nodes[1:]:
            node.start()
        for node in nodes[1:]:
            node.ctl("stop_app")
            node.ctl("join_cluster", nodes[0].name)
            node.ctl("start_app")
        status = nodes[0].ctl("cluster_status", "--formatter", "json")
        running = json.loads(status[status.index("{"):])["running_nodes"]
        assert sorted(running) == sorted(n.name for n in nodes), status
        yield nodes
    finally:
        for node in nodes:
            node.kill()


def test_a_node_killed_mid_run_loses_no_task_on_quorum_queues(
    tmp_path: Path, cluster: list[RabbitNode], capsys: pytest.CaptureFixture[str]
) -> None:
    config = Config(
        broker_url=";".join(node.url() for node in cluster),
        result_backend="none",
        exchange="ex-cluster",
        default_queue="q-cluster",
        binding_key="q-cluster",
        queue_declare_args=freeze_mapping({"x-queue-type": "quorum"}, "queue_declare_args"),
        prefetch_count=16,
    )
    quorum = {"MACHINERY_QUEUE_DECLARE_ARGS": json.dumps({"x-queue-type": "quorum"})}
    victim = cluster[0]  # the node every client connects to first, and the queue's first leader

    def kill_a_node() -> str:
        pid = victim.beam_pid()
        victim.kill()
        return f"killed {victim.name} (pid {pid}) at {time.strftime('%X')}"

    report = run_load(config, tmp_path, producers=3, per_producer=600, workers=3, env=quorum,
                      during=kill_a_node, during_at=0.3, timeout=300.0)
    with capsys.disabled():  # the count of duplicates, in the test log
        print(f"\ncluster load, a node killed: {report.summary()}; {report.notes[0] if report.notes else ''}")
    assert report.notes and report.notes[0].startswith("killed"), report.notes
    failures = report.notes[1:]
    assert not failures, failures
    assert not report.lost, f"{report.summary()}; lost e.g. {sorted(report.lost)[:5]}"
    queue = cluster[1].ctl("list_queues", "name", "type", "--formatter", "json")
    assert {"name": "q-cluster", "type": "quorum"} in json.loads(queue[queue.index("["):]), queue
