"""The report as a document: sections of text, formatted tables and figures.

One structure, rendered twice (HTML and Markdown) by :mod:`bench.report.html`, so the two
outputs cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from bench.report.figures.canvas import FigureFile


@dataclass(frozen=True)
class Table:
    title: str
    frame: pd.DataFrame  # already formatted: every cell a string
    caption: str = ""


@dataclass(frozen=True)
class Bullets:
    items: list[str]


Block = str | Table | Bullets | FigureFile


@dataclass
class Section:
    anchor: str
    title: str
    blocks: list[Block] = field(default_factory=list)
    level: int = 2


@dataclass
class Document:
    title: str
    intro: list[Block]
    sections: list[Section]
