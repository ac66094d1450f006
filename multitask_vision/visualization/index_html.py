"""``index.html``: one page linking every figure and contact sheet of a visualization run."""

from __future__ import annotations

import html
import os
import os.path as osp
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["FigureEntry", "write_index_html"]


@dataclass
class FigureEntry:
    """A written figure: its path and the caption (sample id and metrics) shown under it."""

    path: str
    caption: str


_STYLE = """body{font-family:sans-serif;margin:1em}figure{display:inline-block;margin:4px;
vertical-align:top;width:330px}figure img{width:320px;border:1px solid #ccc}
figcaption{font-size:12px}h2{margin-top:1.5em}"""


def write_index_html(
    out_dir: str,
    figures: Mapping[str, Sequence[FigureEntry]],
    contact_sheets: Mapping[str, str] | None = None,
    title: str = "MultitaskVision predictions",
    notes: Sequence[str] = (),
    summaries: Mapping[str, str] | None = None,
) -> str:
    """Write ``<out_dir>/index.html``: per dataset, its contact sheet and every figure (linked
    thumbnails with captions). Paths are written relative to ``out_dir``.

    Args:
        notes: lines shown under the title (config, checkpoint, split).
        summaries: dataset -> a line shown under its heading (mean per-sample metrics).

    Returns:
        The path of the page.
    """
    contact_sheets = contact_sheets or {}
    summaries = summaries or {}

    def rel(path: str) -> str:
        return html.escape(osp.relpath(path, out_dir).replace(os.sep, "/"), quote=True)

    lines = [
        "<!DOCTYPE html>",
        f'<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>',
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    lines += [f"<p>{html.escape(n)}</p>" for n in notes]
    for dataset, entries in figures.items():
        lines.append(f'<h2 id="{html.escape(dataset, quote=True)}">{html.escape(dataset)} '
                     f"({len(entries)} samples)</h2>")  # fmt: skip
        if summaries.get(dataset):
            lines.append(f"<p>{html.escape(summaries[dataset])}</p>")
        if dataset in contact_sheets:
            lines.append(f'<p><a href="{rel(contact_sheets[dataset])}">contact sheet</a></p>')
        for e in entries:
            lines.append(
                f'<figure><a href="{rel(e.path)}"><img src="{rel(e.path)}" loading="lazy" '
                f'alt="{html.escape(e.caption, quote=True)}"></a>'
                f"<figcaption>{html.escape(e.caption)}</figcaption></figure>"
            )
    lines.append("</body></html>")
    path = osp.join(out_dir, "index.html")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return path
