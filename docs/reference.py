"""The generated parts of the documentation site, built from the code each time the site is built
(so they cannot drift from it): the configuration reference from ``Config``, the command-line
reference from the ``machinery`` argument parser, and the API reference from ``machinery.__all__``."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import itertools
import os
from pathlib import Path

import machinery
from machinery import cli, config

__all__ = ["api_reference", "cli_reference", "config_reference", "field_docs"]

_GO_KEYS = {"broker_url": "broker", "exchange": "amqp.exchange", "exchange_type": "amqp.exchange_type",
            "binding_key": "amqp.binding_key", "prefetch_count": "amqp.prefetch_count",
            "queue_declare_args": "amqp.queue_declare_args"}


def field_docs() -> dict[str, str]:
    """Each ``Config`` field's docstring (the string literal written under it), read from the source."""
    tree = ast.parse(Path(inspect.getfile(config)).read_text(encoding="utf-8"))
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Config"]
    docs: dict[str, str] = {}
    for node, after in itertools.pairwise(cls.body):
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        if isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str):
            docs[node.target.id] = inspect.cleandoc(after.value.value)
    return docs


def _default(f: dataclasses.Field[object]) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return "(required)"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, dict) or (hasattr(value, "items") and not isinstance(value, str)):
        return "`{}`" if not dict(value) else f"`{dict(value)}`"  # type: ignore[call-overload]
    return f"`{value}`"


def config_reference() -> str:
    """A Markdown section per ``Config`` field: type, default, YAML and environment names, meaning."""
    docs = field_docs()
    out: list[str] = []
    for f in dataclasses.fields(machinery.Config):
        kind = str(f.type).replace("FrozenDict", "mapping")
        names = [f"YAML `{f.name}`"]
        if f.name in _GO_KEYS:
            names.append(f"Go layout `{_GO_KEYS[f.name]}`")
        names.append(f"environment `MACHINERY_{f.name.upper()}`")
        out += [f"### `{f.name}`", "", f"*{kind}*, default {_default(f)}; {', '.join(names)}.", "",
                docs.get(f.name, "(not documented)"), ""]
    return "\n".join(out)


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def cli_reference() -> str:
    """The help of ``machinery`` and of each of its commands, as the parser prints it."""
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal: the same width on every build
    try:
        parser = cli.build_parser()
        out = ["## machinery", "", "```text", parser.format_help().rstrip(), "```", ""]
        for name, sub in _subcommands(parser).items():
            out += [f"## machinery {name}", "", "```text", sub.format_help().rstrip(), "```", ""]
    finally:
        if previous is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = previous
    return "\n".join(out)


def api_reference() -> str:
    """One mkdocstrings block per public name of ``machinery`` (its ``__all__``), grouped by kind."""
    groups: dict[str, list[str]] = {"Classes": [], "Errors": [], "Functions": [], "Values": []}
    for name in sorted(machinery.__all__, key=str.lower):
        value = getattr(machinery, name)
        if isinstance(value, type) and issubclass(value, BaseException):
            groups["Errors"].append(name)
        elif isinstance(value, type):
            groups["Classes"].append(name)
        elif callable(value) and not hasattr(value, "__origin__"):
            groups["Functions"].append(name)
        else:
            groups["Values"].append(name)
    out: list[str] = []
    for title, names in groups.items():
        if names:
            out += [f"## {title}", ""]
            out += [f"::: machinery.{name}\n" for name in names]
    return "\n".join(out)
