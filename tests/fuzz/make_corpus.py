"""Write the seed corpus of the fuzz targets into ``corpus/<target>/`` (run again after changing
the message format): real messages for ``decode``, frame streams written by pika for
``scan_frames``, and a few byte strings for ``encode`` (which builds Signatures from any bytes).

    python tests/fuzz/make_corpus.py
"""

from __future__ import annotations

import hashlib
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import pika
import pika.frame
from pika.spec import Basic, BasicProperties

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from machinery import Signature, chain, chord, group
from machinery._speedups._codec_py import encode

CORPUS = Path(__file__).resolve().parent / "corpus"


def _messages() -> list[bytes]:
    add = Signature("add", [1, 1], uuid="task_1")
    members = chord(group(add, Signature("add", [2, 2])), Signature("sum")).group.tasks
    flow = [
        add,
        Signature("x", [None, True, -(2**70), 0.5, "héllo \u2603", [1, [2, {"a": []}]], {"k": {"v": 1.5e300}}],
                  headers={"trace": "abc", "n": 3}, priority=9, retry_count=3, retry_timeout=7,
                  eta=datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc), routing_key="q", immutable=True),
        chain(add, Signature("add", [5, 6]), Signature("multiply", [4])).head,
        group(add, Signature("add", [2, 2])).tasks[0],
        members[0],
    ]
    out = [encode(sig) for sig in flow]
    go_typed = {
        "UUID": "task_5c3b", "Name": "add", "RoutingKey": "machinery_tasks", "ETA": "2030-01-02T03:04:05.5Z",
        "GroupUUID": "", "GroupTaskCount": 0,
        "Args": [{"Name": "a", "Type": "int64", "Value": 3}, {"Type": "[]float64", "Value": [1, 2.5]},
                 {"Type": "string", "Value": "s"}, {"Type": "uint8", "Value": 255}, {"Type": "bool", "Value": True}],
        "Headers": {}, "Priority": 0, "Immutable": False, "RetryCount": 0, "RetryTimeout": 0,
        "OnSuccess": None, "OnError": None, "ChordCallback": None,
    }
    out.append(json.dumps(go_typed).encode())
    out += [b"{}", b'{"Name":"a","UUID":"u","Args":[1e309]}', b'{"Name":"\\ud800"}', b"[" * 70 + b"]" * 70]
    return out


def _frames() -> list[bytes]:
    props = BasicProperties(delivery_mode=2, priority=3, headers={"machinery-reason": "x", "n": 1},
                            content_type="application/json", message_id="m", timestamp=1)
    body = b'{"Name":"add","Args":[1,1]}'
    deliver = pika.frame.Method(1, Basic.Deliver("ctag", 7, False, "ex", "rk")).marshal()
    header = pika.frame.Header(1, len(body), props).marshal()
    plain_header = pika.frame.Header(1, len(body), BasicProperties()).marshal()
    bodies = [pika.frame.Body(1, body[:10]).marshal(), pika.frame.Body(1, body[10:]).marshal()]
    ack = pika.frame.Method(2, Basic.Ack(5, True)).marshal()
    nack = pika.frame.Method(2, Basic.Nack(6, False, True)).marshal()
    other = pika.frame.Method(1, Basic.CancelOk("ctag")).marshal()
    prefix = bytes([1, 2, 2])  # deliver channel 1, confirm channel 2, offset 0: see fuzz_scan_frames.py
    return [
        prefix + deliver + header + b"".join(bodies),
        prefix + deliver + plain_header + pika.frame.Body(1, body).marshal() + ack + nack,
        prefix + ack + nack + other,
        prefix + deliver + header + bodies[0],  # incomplete content
        prefix + deliver + pika.frame.Header(1, 0, props).marshal() + ack,
    ]


def main() -> None:
    encode_seeds = [b"", bytes(range(64)), b"\xff" * 40, hashlib.sha256(b"seed").digest() * 4]
    for target, seeds in (("decode", _messages()), ("scan_frames", _frames()), ("encode", encode_seeds)):
        directory = CORPUS / target
        directory.mkdir(parents=True, exist_ok=True)
        for seed in seeds:
            (directory / hashlib.sha1(seed).hexdigest()[:16]).write_bytes(seed)
        print(f"{target}: {len(seeds)} seeds in {directory}")


if __name__ == "__main__":
    main()
