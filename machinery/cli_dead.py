"""``machinery dead``: list, show, requeue and purge the dead letters of a queue."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from machinery.app import App
from machinery.cli_args import positive_int
from machinery.config import load_config
from machinery.dead_letters import DeadLetter

__all__ = ["add_commands"]

_SubParsers = Any  # argparse's _SubParsersAction, private in typeshed


def _when(letter: DeadLetter) -> str:
    return "-" if letter.dead_at is None else letter.dead_at.strftime("%Y-%m-%d %H:%M:%S")


def _as_json(letter: DeadLetter) -> dict[str, object]:
    return {
        "id": letter.id, "queue": letter.queue, "task": letter.task, "task_uuid": letter.task_uuid,
        "reason": letter.reason, "dead_at": None if letter.dead_at is None else letter.dead_at.isoformat(),
        "delivery_count": letter.delivery_count, "headers": dict(letter.headers),
        "body": letter.body.decode("utf-8", "replace"),
    }


def _queue(app: App, args: argparse.Namespace) -> str:
    return str(args.queue or app.config.default_queue)


def cmd_list(args: argparse.Namespace) -> int:
    with App(load_config(args.config)) as app:
        letters = app.dead_letters(_queue(app, args), limit=args.limit)
        if args.json:
            for letter in letters:
                print(json.dumps(_as_json(letter), ensure_ascii=False))
            return 0
        print(f"{'id':<18} {'task':<20} {'dead-lettered (UTC)':<20} {'deliveries':>10}  reason")
        for letter in letters:
            task = letter.task or "(undecodable)"
            print(f"{letter.id:<18} {task:<20} {_when(letter):<20} {letter.delivery_count:>10}  {letter.reason}")
        print(f"{len(letters)} dead letter(s) in {_queue(app, args)}.dead", file=sys.stderr)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    with App(load_config(args.config)) as app:
        queue = _queue(app, args)
        for letter in app.dead_letters(queue):
            if letter.id == args.id:
                print(json.dumps(_as_json(letter), ensure_ascii=False, indent=2))
                return 0
    print(f"machinery dead show: no dead letter {args.id!r} in {queue}.dead", file=sys.stderr)
    return 1


def cmd_requeue(args: argparse.Namespace) -> int:
    if bool(args.ids) == args.all:
        print("machinery dead requeue: give dead letter ids or --all (not both)", file=sys.stderr)
        return 2
    with App(load_config(args.config)) as app:
        queue = _queue(app, args)
        moved = app.requeue_dead(None if args.all else args.ids, queue=queue)
    print(f"requeued {len(moved)} dead letter(s) to {queue}")
    missing = [i for i in args.ids if i not in moved]
    if missing:
        print(f"machinery dead requeue: not found in {queue}.dead: {' '.join(missing)}", file=sys.stderr)
        return 1
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    with App(load_config(args.config)) as app:
        queue = _queue(app, args)
        count = app.purge_dead(queue)
    print(f"purged {count} dead letter(s) from {queue}.dead")
    return 0


def add_commands(sub: _SubParsers) -> None:
    """Add ``dead list|show|requeue|purge`` to the ``machinery`` parser's subcommands."""
    dead = sub.add_parser("dead", help="list, show, requeue or purge dead letters",
                          description="The messages of a queue that were dead-lettered, and what to do with them.")
    actions = dead.add_subparsers(dest="action", required=True, metavar="ACTION")

    p = actions.add_parser("list", help="id, task, when, deliveries and reason of each dead letter")
    p.add_argument("queue", nargs="?", help="the queue they were dead-lettered from (default: config.default_queue)")
    p.add_argument("--limit", type=positive_int, metavar="N", help="at most N, oldest first")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=cmd_list)

    queue_help = "the queue it was dead-lettered from (default: config.default_queue)"
    p = actions.add_parser("show", help="everything about one dead letter, as JSON")
    p.add_argument("id", help="the dead letter's id, as `dead list` shows it")
    p.add_argument("-Q", "--queue", metavar="QUEUE", help=queue_help)
    p.set_defaults(func=cmd_show)

    p = actions.add_parser("requeue", help="send dead letters back to their queue")
    p.add_argument("ids", nargs="*", metavar="ID", help="dead letter ids")
    p.add_argument("--all", action="store_true", help="every dead letter of the queue")
    p.add_argument("-Q", "--queue", metavar="QUEUE", help=queue_help)
    p.set_defaults(func=cmd_requeue)

    p = actions.add_parser("purge", help="delete every dead letter of a queue")
    p.add_argument("-Q", "--queue", metavar="QUEUE", help=queue_help)
    p.set_defaults(func=cmd_purge)
