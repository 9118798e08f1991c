"""Load: several producer processes while several worker processes consume, through the shared
RabbitMQ; every task is counted by its key, duplicates reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.load import run_load
from tests.support.amqp import amqp_config

pytestmark = [pytest.mark.slow, pytest.mark.rabbitmq]


def test_three_producers_and_three_workers_lose_nothing_and_run_each_task_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = amqp_config(tmp_path).replace(result_backend="none")
    report = run_load(config, tmp_path, producers=3, per_producer=1000, workers=3)
    with capsys.disabled():
        print(f"\nload: {report.summary()}")
    assert not report.notes, report.notes
    assert not report.lost, f"{report.summary()}; lost e.g. {sorted(report.lost)[:5]}"
    assert not report.duplicates, f"{report.summary()}; e.g. {list(report.duplicates.items())[:5]}"
