"""MkDocs hooks: fill the generated parts of the pages from the code at build time. A page holds
a marker line (``<!-- generated: config -->``, ``cli`` or ``api``) where its reference goes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from reference import api_reference, cli_reference, config_reference

_GENERATORS = {"config": config_reference, "cli": cli_reference, "api": api_reference}


def on_page_markdown(markdown: str, **_: Any) -> str:
    """Replace each ``<!-- generated: NAME -->`` line with that reference."""
    for name, generate in _GENERATORS.items():
        marker = f"<!-- generated: {name} -->"
        if marker in markdown:
            markdown = markdown.replace(marker, generate())
    return markdown
