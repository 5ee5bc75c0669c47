"""One self-contained static HTML page: text, tables that sort and filter, embedded images.

Nothing on the page is fetched: images are ``data:`` URIs, the style and the few lines of script are
inline, and a Content-Security-Policy forbids every other source, so the page opens from disk, with
no network and no server, and shows the same thing everywhere. Standard library only (both domains'
reports build on it).

    page = Page("My run")
    page.heading("Metrics")
    page.table(["shape", "class", "chamfer"], rows, table_id="metrics", filter_column="class")
    page.image(png_bytes, "a render")
    page.write(Path("report.html"))

A table's header cells sort it when clicked (numbers as numbers, blanks last; again for descending);
``filter_column`` adds a drop-down above it that shows only the rows of one value of that column.
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path

from sdf_autodec.atomic import atomic_write

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5em auto; max-width: 1300px; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { font-size: 1.25em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
h3 { font-size: 1.05em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 2px 6px; text-align: right; vertical-align: middle; }
td.text, th.text { text-align: left; }
th { background: #f3f3f3; cursor: pointer; user-select: none; position: sticky; top: 0; }
th[data-sort="asc"]::after { content: " \\25B2"; } th[data-sort="desc"]::after { content: " \\25BC"; }
tr:nth-child(even) td { background: #fafafa; }
.scroll { max-height: 34em; overflow: auto; display: inline-block; }
.note { color: #666; font-size: 0.9em; } .missing { color: #a40; }
figure { display: inline-block; margin: 0.4em 0.8em 0.8em 0; vertical-align: top; }
figcaption { font-size: 0.85em; color: #444; }
img { image-rendering: auto; }
pre { background: #f6f6f6; padding: 0.6em; overflow: auto; max-height: 30em; font-size: 0.8em; }
select { margin: 0.3em 0; }
"""

SCRIPT = """
function cellValue(row, i) {
  const c = row.cells[i]; const v = c.getAttribute('data-value'); const t = v !== null ? v : c.textContent.trim();
  const n = parseFloat(t); return (t !== '' && isFinite(n) && /^[-+0-9.eE]+$/.test(t)) ? n : (t === '' ? null : t.toLowerCase());
}
function sortTable(th) {
  const table = th.closest('table'); const body = table.tBodies[0]; const i = th.cellIndex;
  const dir = th.getAttribute('data-sort') === 'asc' ? 'desc' : 'asc';
  for (const h of table.tHead.rows[0].cells) h.removeAttribute('data-sort');
  th.setAttribute('data-sort', dir);
  const rows = Array.from(body.rows);
  rows.sort((a, b) => {
    const x = cellValue(a, i), y = cellValue(b, i);
    if (x === null && y === null) return 0; if (x === null) return 1; if (y === null) return -1;
    const r = (typeof x === 'number' && typeof y === 'number') ? x - y : String(x).localeCompare(String(y));
    return dir === 'asc' ? r : -r;
  });
  for (const r of rows) body.appendChild(r);
}
function filterTable(select) {
  const table = document.getElementById(select.getAttribute('data-table')); const i = parseInt(select.getAttribute('data-column'));
  for (const r of table.tBodies[0].rows) r.style.display = (select.value === '' || r.cells[i].textContent.trim() === select.value) ? '' : 'none';
}
document.addEventListener('DOMContentLoaded', () => {
  for (const th of document.querySelectorAll('table.sortable th')) th.addEventListener('click', () => sortTable(th));
  for (const s of document.querySelectorAll('select.filter')) s.addEventListener('change', () => filterTable(s));
});
"""


def data_uri(png: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(png).decode('ascii')}"


def fmt(value, digits: int = 4) -> str:
    """A table cell's text: numbers to ``digits`` significant figures, None and NaN blank."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "" if not math.isfinite(value) else f"{value:.{digits}g}"
    return str(value)


class Page:
    """An HTML page built in order; ``write`` saves it (atomically)."""

    def __init__(self, title: str):
        self.title = title
        self.parts: list[str] = []

    def heading(self, text: str, level: int = 2, anchor: str | None = None) -> None:
        ident = f' id="{html.escape(anchor)}"' if anchor else ""
        self.parts.append(f"<h{level}{ident}>{html.escape(text)}</h{level}>")

    def paragraph(self, text: str, css: str = "") -> None:
        cls = f' class="{css}"' if css else ""
        self.parts.append(f"<p{cls}>{html.escape(text)}</p>")

    def raw(self, markup: str) -> None:
        """Markup as it is (the caller escapes what it interpolates)."""
        self.parts.append(markup)

    def preformatted(self, text: str) -> None:
        self.parts.append(f"<pre>{html.escape(text)}</pre>")

    def image(self, png: bytes, alt: str, caption: str = "", width: int | None = None) -> None:
        self.parts.append(figure(png, alt, caption, width))

    def table(
        self, columns: list[str], rows: list[list], table_id: str, filter_column: str | None = None, text_columns: tuple[str, ...] = (), scroll: bool = True
    ) -> None:
        """A sortable table; a cell may be a plain value or ``Cell`` (markup with a sort value)."""
        parts = []
        if filter_column is not None and filter_column in columns:
            i = columns.index(filter_column)
            values = sorted({fmt(r[i].value if isinstance(r[i], Cell) else r[i]) for r in rows})
            options = "".join(f'<option value="{html.escape(v)}">{html.escape(v)}</option>' for v in values)
            parts.append(
                f'<label>{html.escape(filter_column)}: <select class="filter" data-table="{table_id}" data-column="{i}">'
                f'<option value="">all</option>{options}</select></label><br>'
            )
        head = "".join(f'<th class="{"text" if c in text_columns else ""}">{html.escape(c)}</th>' for c in columns)
        body = []
        for r in rows:
            cells = []
            for c, v in zip(columns, r):
                css = ' class="text"' if c in text_columns else ""
                if isinstance(v, Cell):
                    cells.append(f'<td{css} data-value="{html.escape(fmt(v.value))}">{v.markup}</td>')
                else:
                    cells.append(f"<td{css}>{html.escape(fmt(v))}</td>")
            body.append("<tr>" + "".join(cells) + "</tr>")
        table = f'<table class="sortable" id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
        parts.append(f'<div class="scroll">{table}</div>' if scroll else table)
        self.parts.append("".join(parts))

    def html(self) -> str:
        return (
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            f"<title>{html.escape(self.title)}</title><style>{STYLE}</style><script>{SCRIPT}</script></head>\n<body>\n"
            f"<h1>{html.escape(self.title)}</h1>\n" + "\n".join(self.parts) + "\n</body></html>\n"
        )

    def write(self, path: Path) -> Path:
        text = self.html()
        atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
        return path


class Cell:
    """A table cell of markup (an image, a link) that sorts by ``value``."""

    def __init__(self, markup: str, value=None):
        self.markup, self.value = markup, value


def figure(png: bytes, alt: str, caption: str = "", width: int | None = None) -> str:
    w = f' width="{width}"' if width else ""
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="{data_uri(png)}" alt="{html.escape(alt)}"{w}>{cap}</figure>'


def thumbnail(png: bytes, alt: str, width: int | None = None) -> str:
    w = f' width="{width}"' if width else ""
    return f'<img src="{data_uri(png)}" alt="{html.escape(alt)}"{w}>'
