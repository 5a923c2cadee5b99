"""Tables for people: Markdown (README, reports), aligned text (terminals), atomic files.

One renderer for the package (evaluation, generation, quickstart) and the benchmarks.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, Collection, Dict, List, Optional, Sequence

from .fileio import atomic_path

__all__ = ["markdown_table", "text_table", "write_tables", "Record"]


class Record:
    """A table's dataclass as JSON and back (keys a file has but the class does not are ignored)."""

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]):
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def _right(n: int, right: Optional[Collection[int]]) -> Collection[int]:
    """The right-aligned columns: the ones given, or (default) all but the first."""
    return range(1, n) if right is None else right


def markdown_table(head: Sequence[str], body: Sequence[Sequence[str]],
                   right: Optional[Collection[int]] = None) -> str:
    """A Markdown table: first column left-aligned, the numbers right-aligned (or the columns ``right``).

    A ``|`` inside a cell is escaped, so it cannot split the cell.
    """
    head = [str(h) for h in head]
    right = _right(len(head), right)

    def row(cells) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    rule = "|" + "|".join("---:" if i in right else "---" for i in range(len(head))) + "|"
    return "\n".join([row(head), rule] + [row(r) for r in body])


def text_table(head: Sequence[str], body: Sequence[Sequence[str]],
               right: Optional[Collection[int]] = None) -> str:
    """The same table for a terminal, in aligned columns."""
    head = [str(h) for h in head]
    body = [[str(c) for c in row] for row in body]
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    right = _right(len(head), right)

    def fmt(cells: List[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([fmt(head), fmt(["-" * w for w in widths])] + [fmt(b) for b in body])


def write_tables(folder, stem: str, texts: Dict[str, str]) -> Dict[str, Path]:
    """folder/stem.EXT for each (EXT, text), each written atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for ext, text in texts.items():
        path = folder / f"{stem}.{ext}"
        with atomic_path(path) as tmp:
            Path(tmp).write_text(text)
        out[ext] = path
    return out
