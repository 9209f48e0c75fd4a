"""The table as a Markdown document: written whole, or between two marker lines of a document that has prose around
it, with clause links that point where the reader will find the spec."""

from __future__ import annotations

import os
from pathlib import Path

from ..spec import SPEC_PATH

#: A Markdown file that holds these two lines gets the table written between them (the rest is kept), so that
#: one command regenerates the table of a document with prose around it.
MARKDOWN_BEGIN = "<!-- fp8ref check: table begins (regenerated, do not edit) -->"
MARKDOWN_END = "<!-- fp8ref check: table ends -->"


def write_markdown(path: str | Path, table: str) -> Path:
    """Write ``table`` to ``path``: between :data:`MARKDOWN_BEGIN` and :data:`MARKDOWN_END` when the file holds
    both (the rest of the document is kept), else as the whole file."""
    path = Path(path)
    text = path.read_text() if path.exists() else ""
    if MARKDOWN_BEGIN in text and MARKDOWN_END in text.split(MARKDOWN_BEGIN, 1)[1]:
        before, rest = text.split(MARKDOWN_BEGIN, 1)
        after = rest.split(MARKDOWN_END, 1)[1]
        path.write_text(f"{before}{MARKDOWN_BEGIN}\n\n{table}\n{MARKDOWN_END}{after}")
    else:
        path.write_text(table)
    return path


def spec_base_for(markdown: str | Path, spec_url: str | None) -> str:
    """Where the Markdown table's clause links point: ``spec_url`` (for a table meant for a pull request, the
    spec's address), else the installed ``SPEC.md`` relative to the written file (in a checkout of the
    repository: ``../conformance/fp8ref_conformance/SPEC.md`` from ``docs/``)."""
    if spec_url:
        return spec_url.split("#", 1)[0]
    return os.path.relpath(SPEC_PATH, Path(markdown).resolve().parent).replace(os.sep, "/")
