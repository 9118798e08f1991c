"""The command line's control commands: ``machinery revoke`` (tasks that must not run)."""

from __future__ import annotations

import argparse
from typing import Any

from machinery.app import App
from machinery.cli_args import CommandError, seconds
from machinery.config import load_config
from machinery.revoke import DEFAULT_EXPIRY

__all__ = ["add_commands"]

_SubParsers = Any  # argparse's _SubParsersAction, private in typeshed


def cmd_revoke(args: argparse.Namespace) -> int:
    with App(load_config(args.config)) as app:
        for task_uuid in args.uuids:
            try:
                app.revoke(task_uuid, reason=args.reason, expires_in=args.expires_in)
            except ValueError as exc:
                raise CommandError(str(exc)) from None
            print(f"revoked {task_uuid}")
    return 0


def add_commands(sub: _SubParsers) -> None:
    """Add ``revoke`` to the ``machinery`` parser's subcommands."""
    p = sub.add_parser("revoke", help="make sure pending or delayed tasks do not run",
                       description="Revoke tasks: every worker skips them (state REVOKED, no callbacks).")
    p.add_argument("uuids", nargs="+", metavar="UUID", help="task UUIDs")
    p.add_argument("--reason", default="revoked", help="recorded as the task's error (default: revoked)")
    p.add_argument("--expires-in", type=seconds, default=DEFAULT_EXPIRY, metavar="S",
                   help=f"seconds the revocation is kept (default {DEFAULT_EXPIRY:g}: a week)")
    p.set_defaults(func=cmd_revoke)
