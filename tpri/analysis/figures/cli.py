"""The analysis command lines: `tpri-collect DIR` and `tpri-plot` (also `python -m
tpri.analysis.figures`, the form scripts/make_figures.sh runs).

    tpri-collect outputs/figures/heatmap_smoke            # -> results.csv there
    tpri-plot convergence outputs/figures/convergence_smoke --where seed=0
    tpri-plot sweep sensitivity_lr outputs/figures/sensitivity_lr   # its kind and options: --key lr
    tpri-plot report outputs/figures                      # -> outputs/figures/index.html
    tpri-plot sweeps conf/sweep/*_smoke.yaml              # those of these sweeps that make a figure

The kinds (`tpri-plot KIND`), their options and what makes their figures are the entries of
`registry.KINDS`; this module reads them and knows no kind by name. Every figure is computed
before anything is written; a runs dir holding several tasks gives one figure per task, named
after it. Bad input gets one line on stderr and exit code 2 (a wrong argument) or 1 (nothing
usable to plot), and nothing is written.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import warnings
from pathlib import Path

import pandas as pd

from tpri.analysis.collect import DataError, UsageError, write_results
from tpri.analysis.figures import registry
from tpri.analysis.figures.kinds import Output
from tpri.analysis.figures.registry import KINDS
from tpri.analysis.figures.report import findings_markdown, sidecar, write_index
from tpri.analysis.figures.style import header_text, save
from tpri.cli import Parser, stop_writing_stdout
from tpri.io import save_text

# ----------------------------------------------------------------------------- arguments


def _out_dir(value: str) -> Path:
    """An --out value: a non-empty path."""
    if not value.strip():
        raise argparse.ArgumentTypeError("expected a dir, got an empty path")
    return Path(value)


def _runs_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("results", type=Path, help="dir of runs (searched recursively) or results.csv")
    p.add_argument("--out", type=_out_dir, default=None, help="output dir (default: the runs dir)")
    p.add_argument(
        "--where",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="keep only the runs matching, e.g. dataset.name=adding model.hidden=100",
    )


def _bench_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("bench", type=Path, help="csv of scripts/benchmark.py")
    p.add_argument("--out", type=_out_dir, default=None, help="output dir (default: the csv's dir)")


SOURCES = {"runs": (_runs_args, "results"), "bench": (_bench_args, "bench")}  # Kind.source -> args


def _command_parsers(commands) -> None:
    p = commands.add_parser("report", help="index.html showing every figure below DIR")
    p.add_argument("dir", type=Path, help="dir searched recursively for figures")
    p.add_argument("--out", type=Path, default=None, help="html path (default: DIR/index.html)")
    p.add_argument("--markdown", action="store_true", help="also print the findings as markdown")
    p = commands.add_parser("sweep", help="plot DIR as the figure of sweep NAME (its kind and options)")
    p.add_argument("name", metavar="NAME", help="the sweep, conf/sweep/NAME.yaml")
    p.add_argument("dir", type=Path, metavar="DIR", help="its dir of runs")
    p = commands.add_parser("sweeps", help="print which of the sweeps YAML... make a figure")
    p.add_argument("yamls", nargs="+", type=Path, metavar="YAML", help="conf/sweep/NAME.yaml files")


def build_parser(prog: str) -> Parser:
    parser = Parser(prog=prog, description="Plot the paper's figures from a dir of runs.")
    commands = parser.add_subparsers(dest="kind", required=True, metavar="KIND", parser_class=Parser)
    for kind in KINDS.values():
        p = commands.add_parser(kind.name, help=kind.help)
        SOURCES[kind.source][0](p)
        for option in kind.options:
            p.add_argument(option.flag, **option.settings)
    _command_parsers(commands)
    return parser


def check_out(out: Path | None, flag: str = "--out") -> None:
    """UsageError unless `out` is (or can be made as) a writable dir."""
    if out is None:
        return
    if out.exists() and not out.is_dir():
        raise UsageError(f"{flag} {out}: exists and is not a dir")
    parent = out
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise UsageError(f"{flag} {out}: cannot create a dir there ({parent} is not a writable dir)")


# ----------------------------------------------------------------------------- figures


def _write(outputs: list[Output], findings: list[list[str]], kind: str, out_dir: Path, command: str):
    """Save every figure (png, pdf, sidecar json with its `findings`) and table (csv); returns
    the paths."""
    written = []
    for output, notes in zip(outputs, findings):
        png, pdf = save(output.fig, out_dir, output.name)
        chosen = None if output.chosen is None else output.chosen.to_dict("records")
        header = header_text(output.fig)
        side = sidecar(png, kind, command, header, output.jobs, notes, chosen, output.drawn, output.note)
        written += [png, pdf, side]
        if output.chosen is not None:
            save_text(output.chosen.to_csv(index=False), out_dir / f"{output.name}_chosen.csv")
            written.append(out_dir / f"{output.name}_chosen.csv")
        for name, table in output.tables.items():
            save_text(table.to_csv(index=False), out_dir / f"{name}.csv")
            written.append(out_dir / f"{name}.csv")
    return written


def plot(args, command: str) -> None:
    """`tpri-plot KIND ...`: make the kind's figures and findings, then write them."""
    kind = KINDS[args.kind]
    check_out(args.out)
    outputs = registry.load(kind.make)(args)
    explain = registry.load(kind.findings) if kind.findings else lambda *facts: []
    findings = [explain(*output.facts) for output in outputs]
    source = getattr(args, SOURCES[kind.source][1])
    out_dir = args.out or (source.parent if source.is_file() else source)
    for output in outputs:
        for line in output.printed:
            print(line)
    for path in _write(outputs, findings, kind.name, out_dir, command):
        print(path)


def report(args) -> None:
    """`tpri-plot report DIR`: index.html of every figure below DIR."""
    if not args.dir.is_dir():
        raise UsageError(f"{args.dir}: not a dir (expected a dir of figures)")
    if args.out is not None and (args.out.is_dir() or not args.out.parent.is_dir()):
        raise UsageError(f"--out {args.out}: expected an html path in an existing dir")
    print(write_index(args.dir, args.out))
    if args.markdown:
        print(findings_markdown(args.dir))


def sweep_kind(name: str) -> list[str]:
    """The kind and options plotting sweep `name`; UsageError if the registry has none."""
    try:
        return registry.plot_args(name)
    except KeyError:
        why = "makes no figure (NOT_PLOTTED)" if name in registry.NOT_PLOTTED else "no figure kind draws it"
        raise UsageError(f"sweep {name}: {why} (kinds and their sweeps: {registry.__file__})") from None


def sweeps(args) -> None:
    """`tpri-plot sweeps YAML...`: the names of those sweeps that make a figure, one a line."""
    for path in args.yamls:
        if not path.is_file():
            raise UsageError(f"{path}: no such file (expected a sweep config, conf/sweep/NAME.yaml)")
    names = [path.stem for path in args.yamls]
    unknown = registry.unplotted(names)
    if unknown:
        raise UsageError(
            f"sweeps {', '.join(unknown)}: no figure kind draws them; give each a kind's sweep "
            f"pattern, or list it in NOT_PLOTTED, in {registry.__file__}"
        )
    print("\n".join(name for name in names if name not in registry.NOT_PLOTTED))


# ----------------------------------------------------------------------------- entry points


def _run(action, prog: str) -> int:
    """Run `action()`, printing warnings and errors as lines; the exit code."""
    message = None  # an action that returns a code has printed its own error line
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            code = action() or 0
        except UsageError as e:
            code, message = 2, str(e)
        except DataError as e:
            code, message = 1, str(e)
        except BrokenPipeError:  # the reader of stdout left (`| head`): stop as a pipe's writer does
            return stop_writing_stdout()
        except OSError as e:  # a read-only (archived) dir, a full disk: earlier files stay whole
            code, message = 1, cannot_write(e)
    for warning in caught:
        if issubclass(warning.category, UserWarning):
            print(f"{prog}: warning: {warning.message}", file=sys.stderr)
    if message is not None:
        print(f"{prog}: error: {message}", file=sys.stderr)
    return code


def cannot_write(err: OSError) -> str:
    """One line for a write that failed: where, why, and what to do."""
    where = f"{err.filename}: " if err.filename else ""
    return f"{where}cannot write here ({err.strerror or err}); use --out to write elsewhere"


def plot_main(argv: list[str] | None = None, prog: str = "tpri-plot") -> int:
    """`tpri-plot KIND ...`, `tpri-plot report|sweep|sweeps ...`; the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser(prog).parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    command = shlex.join([*prog.split(), *argv])
    actions = {"report": report, "sweep": lambda a: plot_sweep(a, prog), "sweeps": sweeps}
    action = actions.get(args.kind, lambda a: plot(a, command))
    return _run(lambda: action(args), f"{prog} {args.kind}")


def plot_sweep(args, prog: str) -> int:
    """`tpri-plot sweep NAME DIR`: run as `tpri-plot KIND DIR OPTIONS` (the command recorded)."""
    kind, *options = sweep_kind(args.name)
    return plot_main([kind, str(args.dir), *options], prog)


def collect_main(argv: list[str] | None = None, prog: str = "tpri-collect") -> int:
    """`tpri-collect DIR [--out CSV]`: the runs below DIR as results.csv; exit code."""
    parser = Parser(prog=prog, description="Collect the runs below a dir into results.csv.")
    parser.add_argument("root", type=Path, help="dir searched recursively for job dirs")
    parser.add_argument("--out", type=Path, default=None, help="csv path (default: ROOT/results.csv)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)

    def action():
        out = write_results(args.root, args.out)
        df = pd.read_csv(out)
        jobs = df.drop_duplicates("job_dir")
        counts = ", ".join(f"{n} {status}" for status, n in jobs["status"].value_counts().items())
        print(f"{len(jobs)} jobs ({counts}), {len(df)} rows -> {out}")

    return _run(action, prog)
