"""One static page for every figure: `index.html` with each figure, its caption (what it shows,
the command that made it, the run count and budget) and a compact table of its runs.

Each plot command writes `NAME.json` beside `NAME.png`; `write_index(dir)` gathers those below
`dir`. No server, no scripts: the page opens in any browser.
"""

from __future__ import annotations

import datetime
import html
import json
from pathlib import Path

import pandas as pd

from tpri.analysis.collect import DataError
from tpri.analysis.figures.registry import KINDS
from tpri.analysis.figures.style import plain
from tpri.analysis.figures.tasks import SMOKE
from tpri.io import save_text

MARK = "tpri-figure"  # key of the sidecar files, to tell them from other json files


def run_table(jobs: pd.DataFrame) -> list[dict]:
    """Per method: runs, completed, diverged, failed and the iterations (one row per job)."""
    rows = []
    for method, runs in jobs.groupby("method"):
        status = runs["status"].value_counts()
        its = runs["max_iter"] if "max_iter" in runs else runs.get("stop_iteration")
        its = "" if its is None else "/".join(f"{v:g}" for v in sorted(its.dropna().unique()))
        rows.append(
            {
                "method": method,
                "runs": len(runs),
                **{s: int(status.get(s, 0)) for s in ("completed", "diverged", "failed")},
                "iterations": its,
            }
        )
    return rows


def sidecar(
    png: Path,
    kind: str,
    command: str,
    header: str,
    jobs: pd.DataFrame | None,
    findings: list[str],
    chosen: list[dict] | None = None,
    drawn: pd.DataFrame | None = None,
    note: str = "",
) -> Path:
    """Write `NAME.json` beside `png` with what `write_index` shows: the caption (and `note`,
    what its lines and bands mean), the header, the runs drawn (`drawn`, default `jobs`) and
    in the dir, findings, chosen settings; returns its path."""
    drawn = jobs if drawn is None else drawn
    info = {
        MARK: 1,
        "kind": kind,
        "png": png.name,
        "pdf": png.with_suffix(".pdf").name,
        "caption": " ".join(t for t in (KINDS[kind].caption if kind in KINDS else "", note) if t),
        "header": header,
        "command": command,
        "runs": 0 if drawn is None else int(drawn["job_dir"].nunique()),
        "runs_in_dir": 0 if jobs is None else int(jobs["job_dir"].nunique()),
        "table": [] if jobs is None else run_table(jobs.drop_duplicates("job_dir")),
        "findings": findings,
        "chosen": chosen,  # each compared method's chosen setting (None: not a comparison)
    }
    path = png.with_suffix(".json")
    save_text(json.dumps(info, indent=1), path)
    return path


def find_sidecars(root: Path) -> list[tuple[Path, dict]]:
    """(path, content) of every figure sidecar below `root`, sorted by path."""
    found = []
    for path in sorted(root.rglob("*.json")):
        try:
            info = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(info, dict) and info.get(MARK) and (path.parent / info["png"]).exists():
            found.append((path, info))
    return found


def _table_html(rows: list[dict]) -> str:
    if not rows:
        return ""
    head = "".join(f"<th>{html.escape(k)}</th>" for k in rows[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row.values()) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _findings_html(findings: list[str]) -> str:
    if not findings:
        return ""
    items = "".join(f"<li>{html.escape(line)}</li>" for line in findings)
    return f"<p><b>What the runs show</b> (computed from them):</p><ul>{items}</ul>"


def _runs_text(info: dict) -> str:
    """'4 runs drawn of 24 in the sweep' (or '4 runs' when every run is drawn)."""
    runs, total = info["runs"], info.get("runs_in_dir", info["runs"])
    return f"{runs} runs" if runs == total else f"{runs} runs drawn of {total} in the sweep"


def _figure_html(root: Path, path: Path, info: dict) -> str:
    png = (path.parent / info["png"]).relative_to(root).as_posix()
    pdf = (path.parent / info["pdf"]).relative_to(root).as_posix()
    header = "<br>".join(html.escape(plain(line)) for line in info["header"].splitlines())
    return (
        f'<section id="{html.escape(png)}"><h2>{html.escape(png)}</h2>'
        f'<a href="{html.escape(pdf)}"><img src="{html.escape(png)}" alt="{html.escape(png)}"></a>'
        f"<p><b>What it shows.</b> {html.escape(info['caption'])}</p>"
        f"<p><b>Runs and budget.</b> {_runs_text(info)}. {header}</p>"
        f"<p><b>Command.</b> <code>{html.escape(info['command'])}</code></p>"
        f"{_findings_html(info.get('findings', []))}"
        f"{_table_html(info['table'])}</section>"
    )


STYLE = (
    "body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}"
    "img{max-width:100%;border:1px solid #ddd}section{margin-bottom:2.5em}"
    "table{border-collapse:collapse;font-size:90%}td,th{border:1px solid #ccc;padding:2px 6px}"
    "code{background:#f4f4f4;padding:1px 3px}"
    ".smoke{background:#fff3cd;border:1px solid #e0b000;padding:.6em}"
)


def _banner(figures: list[tuple[Path, dict]]) -> str:
    """A warning box when some figures come from smoke sweeps."""
    smoke = [i["png"] for _, i in figures if SMOKE in i.get("header", "")]
    if not smoke:
        return ""
    return (
        f'<p class="smoke"><b>{SMOKE}.</b> {len(smoke)} of {len(figures)} figures come from the '
        "*_smoke sweeps: small offline stand-ins (digits for MNIST, a few hundred iterations, "
        "2 seeds, small grids). Their conclusions need not hold at the paper's budget.</p>"
    )


def write_index(root: str | Path, out: str | Path | None = None) -> Path:
    """Write `index.html` (in `root` unless `out`) showing every figure below `root`;
    DataError if there is none."""
    root = Path(root)
    figures = find_sidecars(root)
    if not figures:
        raise DataError(f"{root}: no figures made by tpri-plot below it (no NAME.json beside a NAME.png)")
    out = Path(out) if out is not None else root / "index.html"
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    names = [html.escape((p.parent / i["png"]).relative_to(root).as_posix()) for p, i in figures]
    links = "".join(f'<li><a href="#{name}">{name}</a></li>' for name in names)
    body = "".join(_figure_html(root, p, i) for p, i in figures)
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>tpri figures</title>"
        f"<style>{STYLE}</style></head><body><h1>tpri figures</h1>"
        f"<p>{len(figures)} figures below <code>{html.escape(str(root))}</code>, page written "
        f"{stamp}. Click a figure for its PDF.</p>{_banner(figures)}<ul>{links}</ul>{body}</body></html>"
    )
    save_text(page, out)
    return out


def findings_markdown(root: str | Path) -> str:
    """The findings of every figure below `root` as a markdown list (for docs/figures.md)."""
    root = Path(root)
    lines = []
    for path, info in find_sidecars(root):
        name = (path.parent / info["png"]).relative_to(root).as_posix()
        header = [h for h in plain(info["header"]).splitlines() if not h.startswith(SMOKE)]
        lines.append(f"- `{name}` ({'; '.join(header[1:3])}):")
        lines += [f"  - {plain(line)}" for line in info.get("findings", [])]
    return "\n".join(lines)
