"""A tiny HTML vocabulary for the report: escaped text, tables, embedded figures, pass/fail badges.

Every image is embedded as a ``data:`` URI, so the report is one self-contained file that opens without a
network or the files beside it.
"""

from __future__ import annotations

import base64
import html
import mimetypes
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

CSS = """
:root { --fg:#1d2329; --muted:#5b6670; --line:#dde3e8; --bg:#fbfcfd; --ok:#1a7f37; --bad:#c62828;
        --base:#1f77b4; --td:#d62728; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
       background: var(--bg); margin: 0; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 64px; }
h1 { font-size: 26px; margin: 0 0 4px; } h2 { font-size: 20px; margin: 36px 0 8px; border-bottom: 1px solid var(--line);
     padding-bottom: 4px; } h3 { font-size: 16px; margin: 20px 0 6px; }
p.lede { color: var(--muted); margin-top: 0; }
nav { position: sticky; top: 0; background: var(--bg); border-bottom: 1px solid var(--line); padding: 6px 0;
      z-index: 1; font-size: 13px; }
nav a { margin-right: 12px; color: var(--muted); text-decoration: none; } nav a:hover { color: var(--fg); }
table { border-collapse: collapse; margin: 8px 0 12px; font-size: 13.5px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: right; vertical-align: top; }
th:first-child, td:first-child { text-align: left; } th { background: #f1f4f7; font-weight: 600; }
.badge { display: inline-block; padding: 0 7px; border-radius: 9px; font-size: 12px; font-weight: 600; color: #fff; }
.pass { background: var(--ok); } .fail { background: var(--bad); } .na { background: #8a949c; }
figure { margin: 8px 0 16px; } figure img { max-width: 100%; height: auto; border: 1px solid var(--line);
         background: #fff; image-rendering: auto; } figcaption { color: var(--muted); font-size: 13px; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 18px; } .pair > div { min-width: 0; }
.pair h3 { margin-top: 4px; }
.pixel img { image-rendering: pixelated; }
ul.conclusions li { margin: 4px 0; } .muted { color: var(--muted); } code { font-size: 13px; }
@media (max-width: 820px) { .pair { grid-template-columns: 1fr; } }
"""


def esc(x: Any) -> str:
    return html.escape(str(x))


def fmt(x: Any, digits: int = 3) -> str:
    """Numbers with ``digits`` decimals (small ones with ``digits`` significant figures, so a weight decay
    of 5e-4 is not shown as 0.001); ``None`` as an en dash."""
    if x is None:
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        if x != x:
            return "–"
        if x != 0 and abs(x) < 10 ** -(digits - 1):
            return f"{x:.{digits}g}"
        return f"{x:.{digits}f}"
    return esc(x)


def pct(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else f"{100 * x:.{digits}f}%"


def badge(passed: bool | None) -> str:
    if passed is None:
        return '<span class="badge na">n/a</span>'
    return '<span class="badge pass">pass</span>' if passed else '<span class="badge fail">FAIL</span>'


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], raw: bool = False) -> str:
    """A table; cells are escaped unless ``raw`` (then they are trusted HTML built by this module)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c if raw else esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def data_uri(path: str | Path) -> str:
    path = Path(path)
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def figure(path: str | Path, caption: str = "", alt: str = "", pixelated: bool = False) -> str:
    """An embedded image, or a visible note where the file is missing (never a broken image)."""
    path = Path(path)
    if not path.is_file():
        return f'<p class="muted">(figure not produced: {esc(path.name)})</p>'
    cls = ' class="pixel"' if pixelated else ""
    cap = f"<figcaption>{caption}</figcaption>" if caption else ""
    return f'<figure{cls}><img src="{data_uri(path)}" alt="{esc(alt or path.stem)}">{cap}</figure>'


def section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2>{body}</section>'


def page(title: str, subtitle: str, sections: Sequence[tuple[str, str, str]]) -> str:
    nav = "".join(f'<a href="#{esc(a)}">{esc(t)}</a>' for a, t, _ in sections)
    body = "".join(section(a, t, b) for a, t, b in sections)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body><main>"
        f'<h1>{esc(title)}</h1><p class="lede">{subtitle}</p><nav>{nav}</nav>{body}</main></body></html>'
    )
