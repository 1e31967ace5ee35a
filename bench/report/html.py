"""Render a :class:`~bench.report.document.Document` as a self-contained HTML page and as Markdown.

The HTML page has no external references: CSS is inline and every figure is embedded as a
base64 ``data:`` URI, so the file opens offline and can be mailed or committed on its own.
The Markdown summary links the PNG files next to it.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from bench.report.document.model import Block, Bullets, Document, Section, Table
from bench.report.figures.canvas import FigureFile, slug

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 0 auto;
       max-width: 1280px; padding: 0 24px 48px; color: #1d1d1f; line-height: 1.45; }
h1 { margin-top: 28px; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: 4px; margin-top: 40px; }
h3 { margin-top: 26px; }
nav ul { columns: 2; font-size: 0.95em; }
table { border-collapse: collapse; margin: 8px 0 4px; font-size: 0.88em; }
th, td { border: 1px solid #d0d0d0; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; position: sticky; top: 0; }
tr:nth-child(even) td { background: #fafafa; }
.caption, figcaption { color: #555; font-size: 0.9em; max-width: 1100px; }
figure { margin: 18px 0 26px; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
.scroll { overflow-x: auto; }
li { margin: 3px 0; }
"""


BOLD = re.compile(r"\*\*(.+?)\*\*")


def _esc(text: str) -> str:
    return html.escape(str(text), quote=True)


def _inline(text: str) -> str:
    """Escaped text with the Markdown bold the document uses (``**undecided**``) as <strong>:
    one document renders to both formats, so its one piece of inline markup must too."""
    return BOLD.sub(r"<strong>\1</strong>", _esc(text))


def table_anchor(section: Section, table: Table) -> str:
    return f"{section.anchor}-{slug(table.title)}"


def _html_table(section: Section, t: Table) -> str:
    head = "".join(f"<th>{_esc(c)}</th>" for c in t.frame.columns)
    body = "\n".join(
        "<tr>" + "".join(f"<td>{_inline(v)}</td>" for v in row) + "</tr>"
        for row in t.frame.itertuples(index=False)
    )
    caption = f'<p class="caption">{_esc(t.caption)}</p>' if t.caption else ""
    return (
        f'<h3 id="{table_anchor(section, t)}">{_esc(t.title)}</h3>\n'
        f'<div class="scroll"><table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n'
        f"</tbody></table></div>\n{caption}"
    )


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _html_block(section: Section, block: Block, figure_dir: Path) -> str:
    if isinstance(block, Table):
        return _html_table(section, block)
    if isinstance(block, Bullets):
        return "<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in block.items) + "</ul>"
    if isinstance(block, FigureFile):
        anchor = f"fig-{slug(block.name.removesuffix('.png'))}"
        return (
            f'<figure id="{anchor}"><h3>{_esc(block.title)}</h3>'
            f'<img src="{_data_uri(figure_dir / block.name)}" alt="{_esc(block.title)}">'
            f"<figcaption>{_esc(block.caption)}</figcaption></figure>"
        )
    return f"<p>{_inline(block)}</p>"


def render_html(doc: Document, figure_dir: Path) -> str:
    toc = "".join(f'<li><a href="#{s.anchor}">{_esc(s.title)}</a></li>' for s in doc.sections)
    intro = "\n".join(_html_block(Section("intro", ""), b, figure_dir) for b in doc.intro)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_esc(doc.title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{_esc(doc.title)}</h1>",
        intro,
        f"<nav><h2>Contents</h2><ul>{toc}</ul></nav>",
    ]
    for s in doc.sections:
        parts.append(f'<section id="{s.anchor}"><h{s.level}>{_esc(s.title)}</h{s.level}>')
        parts += [_html_block(s, b, figure_dir) for b in s.blocks]
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _md_cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _md_block(block: Block) -> str:
    if isinstance(block, Table):
        cols = list(block.frame.columns)
        lines = [
            f"**{block.title}**",
            "",
            "| " + " | ".join(_md_cell(c) for c in cols) + " |",
            "|" + "|".join("---" for _ in cols) + "|",
        ]
        lines += [
            "| " + " | ".join(_md_cell(v) for v in row) + " |"
            for row in block.frame.itertuples(index=False)
        ]
        if block.caption:
            lines += ["", f"*{block.caption}*"]
        return "\n".join(lines)
    if isinstance(block, Bullets):
        return "\n".join(f"- {i}" for i in block.items)
    if isinstance(block, FigureFile):
        return f"**{block.title}**\n\n![{block.title}]({block.name})\n\n*{block.caption}*"
    return str(block)


def render_markdown(doc: Document) -> str:
    parts = [f"# {doc.title}", *(_md_block(b) for b in doc.intro), "## Contents"]
    parts.append("\n".join(f"- [{s.title}](#{s.anchor})" for s in doc.sections))
    for s in doc.sections:
        parts.append(f'<a id="{s.anchor}"></a>\n\n{"#" * s.level} {s.title}')
        parts += [_md_block(b) for b in s.blocks]
    return "\n\n".join(parts) + "\n"
