"""The authors' settings of every paper experiment and figure sweep, in ONE place, and the table
that compares them with what tpri's configs compose to.

    python -m tpri.configs.paper_settings            # writes docs/paper-settings.md
    python -m tpri.configs.paper_settings --check    # exit 1 when the committed table is stale

Each entry holds the overrides of `python train.py` that compose tpri's job (an experiment, or
a sweep), the authors' value of each setting (read from their code, github.com/vroulet/tpri at
commit c7e7c10: exp/paper_conv_plots.py, exp/exp_gru.py, exp/exp_penn_tree.py, exp/heatmap_*.py,
exp/sensitivity_analysis.py, exp/grad_behavior.py, src/), and the named deviations: settings
where tpri deliberately differs, each with its reason. `compare` checks a composed config
against an entry: every setting equals the authors' value unless it is a named deviation, and
every named deviation of a setting really differs (a fixed one must leave the list).
tests/test_paper_settings.py runs `compare` on every entry and checks the committed table.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

SOURCE = "github.com/vroulet/tpri at commit c7e7c10, the TMLR version"
TABLE = Path("docs") / "paper-settings.md"

# Deviations common to every experiment (protocol, not a config key)
COMMON = (
    "seeds: tpri's sweeps run seeds 0, 1, 2 (the synthetic tasks, sensitivity) or seed 0 (the "
    "rest); the authors made one run per curve with torch.manual_seed(1). Different streams "
    "either way.",
    "synthetic training stream: fresh batches from a seeded generator; the authors' loader "
    "replays the same 4,000 batches every 4,000 iterations.",
    "synthetic evaluation: a fixed held-out set of 1,000 sequences and a fixed 1,000-sequence "
    "training sample; the authors draw 8,000 fresh test sequences at every evaluation and sum the "
    "train loss over 4,000 fresh batches (a scale only).",
    "image batches: drawn uniformly with replacement; the authors read epochs without "
    "replacement. Train loss on a fixed 1,000-image sample (the authors: every training batch).",
    "permuted MNIST: tpri's fixed permutation (dataset.permute_seed) is another draw than the authors'.",
)

TP = {"optimizer.name": "tp", "optimizer.targets": "linearized", "optimizer.update": "graph"}
PLAIN = {"optimizer.momentum": 0.0, "optimizer.nesterov": False}
NESTEROV = {"optimizer.momentum": 0.9, "optimizer.nesterov": True}
PAPER_RULE = {"diverge_weight_norm": None}  # the paper has no weight-norm rule


@dataclass(frozen=True)
class Entry:
    """One paper experiment or figure sweep: how tpri composes it, the authors' settings, and
    the named deviations {setting or topic: reason}."""

    name: str
    figure: str
    overrides: tuple[str, ...]
    authors: dict
    deviations: dict = field(default_factory=dict)


def tp(lr, lr_target, reg, **more) -> dict:
    return {**TP, **PLAIN, "lr": lr, "lr_target": lr_target, "reg": reg, **more}


def bp(lr, momentum: dict) -> dict:
    return {"optimizer.name": "sgd", "lr": lr, **momentum}


def dtp(lr, lr_target, lr_reverse, noise, momentum: dict) -> dict:
    return {
        "optimizer.name": "dtp",
        "optimizer.variant": "authors",
        "optimizer.update": "graph",
        "lr": lr,
        "lr_target": lr_target,
        "optimizer.lr_reverse": lr_reverse,
        "optimizer.noise": noise,
        **momentum,
    }


def synthetic(name: str, T: int, iters: int) -> dict:
    data = {"dataset.name": name, "dataset.length": T, "dataset.variable_length": False}
    if name == "temporal_order":
        data["dataset.bits"] = 1
    return {**data, "model.name": "rnn", "model.hidden": 100, "model.activation": "tanh", "batch_size": 20,
            "max_iter": iters, "eval_every": 200, "diverge_check_every": 4000, **PAPER_RULE}  # fmt: skip


def images(name: str, iters: int, normalize: bool, permute: bool = False, **more) -> dict:
    check = {"cifar10": 3125}.get(name, 3750)  # one epoch of batch 16
    return {"dataset.name": name, "dataset.size_chunk": 1, "dataset.permute": permute,
            "dataset.normalize": normalize, "dataset.n_train": None, "model.name": "rnn",
            "model.hidden": 100, "batch_size": 16, "max_iter": iters, "eval_every": 200,
            "diverge_check_every": check, **PAPER_RULE, **more}  # fmt: skip


SYNTHETIC_DTP = (1e-2, 1e-1, 1e-3, 0.0, NESTEROV)
MNIST_DTP = (1e-2, 1e-7, 1e-8, 0.1, PLAIN)
CIFAR = {"dataset.channels_as_steps": True, "dataset.grayscale": False}
GRU = {"model.name": "gru"}
PTB = {
    "dataset.name": "ptb", "dataset.length": 64, "dataset.windows": "overlapping",
    "dataset.order": "in_order", "dataset.n_tokens": 40000,
    "dataset.n_test_tokens": 3546, "model.name": "rnn_text", "model.hidden": 256, "model.embedding_dim": 1024,
    "model.freeze_embedding": True, "batch_size": 512, "max_iter": 24000, "eval_every": 200,
    "diverge_check_every": 77, **PAPER_RULE,
}  # fmt: skip
WINNER = {**images("mnist", 400, True), "batch_size": 512, "diverge_check_every": 118}
WINNER_EVAL = "9 evaluation points (every 50) instead of the authors' 3 (0, 200, 400): finer curve areas"
GRU_RULE = (
    "TP through the GRU uses tpri's own linearized rule e_{t-1} = sum_p A_p(c_p e_t / S^2) "
    "(docs/gru-tp.md, torch's gate convention); the authors' GRU.target_prop is written for the "
    "other convention h' = (1 - z) h + z n. Not offered."
)
PTB_DEVIATIONS = {
    "optimizer.per_step": "tpri's per-step rule counts each local target once; the authors' "
    "(optimizer.per_step=authors, checked against their code) counts u_T twice and leaves l_t "
    "out of h_t's J-target",
    "test windows": "all 3,481 windows of the 3,546 test tokens; the authors' loader evaluates "
    "the first 3,072 (6 full batches of 512)",
}


def _experiments() -> list[Entry]:
    e = []

    def add(name, figure, authors, deviations=None):
        e.append(Entry(name, figure, (f"experiment={name}",), authors, deviations or {}))

    for task, T, iters, tp_values, bp_lr in (
        ("temporal_order", 60, 40000, (0.1, 1e-2, 10.0), 1e-5),
        ("temporal_order", 120, 48000, (1e-2, 1e-2, 1.0), 1e-5),
        ("adding", 30, 24000, (0.1, 0.1, 1.0), 1e-3),
    ):
        name = f"{task}_{T}"
        base = synthetic(task, T, iters)
        add(name, f"convergence, {task} T={T}: TP", {**base, **tp(*tp_values)})
        add(f"{name}_bp", f"convergence, {task} T={T}: BP", {**base, **bp(bp_lr, NESTEROV)})
        dtp_iters = 40000 if T == 120 else iters  # the authors' DTP panel runs T = 120 for 40k
        add(
            f"{name}_dtp",
            f"DTP panel, {task} T={T}: DTP-PI",
            {**base, "max_iter": dtp_iters, **dtp(*SYNTHETIC_DTP)},
        )
    mnist = images("mnist", 40000, False)
    add("mnist", "convergence, sequential MNIST: TP", {**mnist, **tp(0.1, 1e-4, 1.0)})
    add("mnist_bp", "convergence, sequential MNIST: BP", {**mnist, **bp(1e-5, PLAIN)})
    add("mnist_difference", "targets comparison: difference targets",
        {**mnist, **tp(0.1, 1e-4, 1.0), "optimizer.targets": "difference"})  # fmt: skip
    add("mnist_dtp", "targets comparison and DTP panel, MNIST: DTP-PI", {**mnist, **dtp(*MNIST_DTP)})
    add("mnist_time", "MNIST against time: TP", {**mnist, "max_iter": 12000, **tp(0.1, 1e-4, 1.0)})
    add("mnist_time_bp", "MNIST against time: BP", {**mnist, "max_iter": 156000, **bp(1e-6, PLAIN)})
    permuted = images("mnist", 40000, False, permute=True)
    add("permuted_mnist", "convergence, permuted MNIST: TP", {**permuted, **tp(0.1, 1e-4, 1.0)})
    add("permuted_mnist_bp", "convergence, permuted MNIST: BP", {**permuted, **bp(1e-4, PLAIN)})
    add("permuted_mnist_dtp", "DTP panel, permuted MNIST: DTP-PI", {**permuted, **dtp(*MNIST_DTP)})
    cifar = images("cifar10", 8000, True, **CIFAR)
    add("cifar10", "convergence, CIFAR-10 (T=3072): TP", {**cifar, **tp(1e-2, 1e-2, 10.0)})
    add("cifar10_bp", "convergence, CIFAR-10 (T=3072): BP", {**cifar, **bp(1e-3, PLAIN)})
    gru = images("fashion_mnist", 8000, True, **GRU)
    add(
        "gru_fashion_mnist",
        "convergence, GRU on Fashion-MNIST: TP",
        {**gru, **tp(0.1, 1e-2, 1.0)},
        {"rule": GRU_RULE},
    )
    add("gru_fashion_mnist_bp", "convergence, GRU on Fashion-MNIST: BP", {**gru, **bp(1e-2, PLAIN)})
    ptb_tp = {**PTB, **tp(0.1, 1e-3, 1.0), "optimizer.per_step": "authors"}
    add("ptb", "convergence, Penn Treebank: TP", ptb_tp,
        PTB_DEVIATIONS)  # fmt: skip
    add("ptb_bp", "convergence, Penn Treebank: BP", {**PTB, **bp(1e-2, PLAIN)},
        {k: v for k, v in PTB_DEVIATIONS.items() if k != "optimizer.per_step"})  # fmt: skip
    winner_tp = {**WINNER, **tp(0.1, 1e-2, 1.0), "eval_every": 200}
    add("winner_tp", "winner T x width: TP (lr_target tuned)", winner_tp,
        {"eval_every": WINNER_EVAL})  # fmt: skip
    add("winner_bp", "winner T x width: BP (lr tuned)", {**WINNER, **bp(1e-2, PLAIN), "eval_every": 200},
        {"eval_every": WINNER_EVAL})  # fmt: skip
    return e


def grid(*values) -> list:
    return list(values)


MORE_SEEDS = "3 seeds (0, 1, 2) where the authors made one run (seed 1): mean and spread"
SEED0 = "seed 0 where the authors used seed 1: another stream, same protocol"
EVAL50 = "9 evaluation points (every 50) instead of the authors' 3 (0, 200, 400): finer curves and areas"


def _sweeps() -> list[Entry]:
    s = []

    def add(name, figure, authors, deviations=None):
        s.append(Entry(name, figure, (f"sweep={name}",), authors, deviations or {}))

    def conv(name, figure, experiments, seeds, **more):
        deviations = {"sweep.seed": MORE_SEEDS if len(seeds) > 1 else SEED0}
        add(name, figure, {"sweep.experiment": experiments, "sweep.seed": [1], **more}, deviations)

    conv(
        "convergence",
        "convergence, temporal order T=60",
        ["temporal_order_60", "temporal_order_60_bp"],
        [0, 1, 2],
    )
    conv("convergence_temporal_order_120", "convergence, temporal order T=120",
         ["temporal_order_120", "temporal_order_120_bp"], [0, 1, 2])  # fmt: skip
    conv("convergence_adding_30", "convergence, adding T=30", ["adding_30", "adding_30_bp"], [0, 1, 2])
    for task in ("mnist", "permuted_mnist", "cifar10", "gru_fashion_mnist", "ptb"):
        conv(f"convergence_{task}", f"convergence, {task}", [task, f"{task}_bp"], [0])
    synth = [0, 1, 2]
    conv("dtp_vs_tp", "DTP panel, temporal order T=60",
         ["temporal_order_60", "temporal_order_60_bp", "temporal_order_60_dtp"], synth)  # fmt: skip
    conv("dtp_temporal_order_120", "DTP panel, temporal order T=120 (all methods 40k)",
         ["temporal_order_120", "temporal_order_120_bp", "temporal_order_120_dtp"], synth,
         max_iter=40000)  # fmt: skip
    conv("dtp_adding_30", "DTP panel, adding T=30", ["adding_30", "adding_30_bp", "adding_30_dtp"], synth)
    conv("dtp_mnist", "DTP panel, sequential MNIST", ["mnist", "mnist_bp", "mnist_dtp"], [0])
    conv("dtp_permuted_mnist", "DTP panel, permuted MNIST",
         ["permuted_mnist", "permuted_mnist_bp", "permuted_mnist_dtp"], [0])  # fmt: skip
    conv("targets_comparison", "linearized vs difference targets vs DTP-PI (MNIST)",
         ["mnist", "mnist_difference", "mnist_dtp"], [0])  # fmt: skip
    conv("mnist_time", "MNIST against time", ["mnist_time", "mnist_time_bp"], [0])
    conv("mnist_momentum", "MNIST with momentum 0.9 (Nesterov) for TP and BP", ["mnist", "mnist_bp"], [0],
         **NESTEROV)  # fmt: skip
    short = {"max_iter": 400, "eval_every": 200}
    add("heatmap", "heatmap lr x reg (MNIST, 400 iterations)",
        {"sweep.experiment": ["mnist"], "sweep.lr": grid(1e-4, 1e-3, 1e-2, 1e-1, 1, 10),
         "sweep.reg": grid(1e-4, 1e-3, 1e-2, 1e-1, 1, 10, 100, 1000), "lr_target": 1e-4, "seed": 1, **short},
        {"eval_every": EVAL50, "seed": SEED0})  # fmt: skip
    add("winner", "winner TP vs BP over T x width (MNIST standardised, batch 512, 400 iterations)",
        {"sweep.experiment": ["winner_tp", "winner_bp"],
         "sweep.dataset.size_chunk": grid(1, 2, 4, 16, 56, 196),
         "sweep.model.hidden": grid(16, 32, 64, 128, 256, 512),
         "sweep.tuned_lr": grid(1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1), "seed": 1, **short},
        {"eval_every": EVAL50, "seed": SEED0})  # fmt: skip
    for key, values in (
        ("lr_target", grid(1e-6, 1e-5, 1e-4, 1e-3, 1e-2)),
        ("lr", grid(1e-4, 1e-3, 1e-2, 1e-1, 1)),
        ("reg", grid(1e-1, 1, 10, 100, 1000)),
    ):
        add(f"sensitivity_{key}", f"sensitivity to {key} (MNIST, 400 iterations)",
            {"sweep.experiment": ["mnist"], f"sweep.{key}": values, "sweep.seed": [1], **short},
            {"sweep.seed": MORE_SEEDS, "eval_every": EVAL50})  # fmt: skip
    add("gradients", "gradient behaviour (per-step norms, direction norm, ||W||_2)",
        {"sweep.experiment": ["mnist", "mnist_bp"], "max_iter": 4000, "log_gradients": True},
        {"sweep.experiment": "temporal order T=60 (TP 0.1, 1e-2, 10 / BP 1e-5 Nesterov) instead of the "
         "authors' MNIST (TP 0.1, 1e-4, 1 / BP 1e-5): the per-step norms over T=60 steps in 4,000 "
         "iterations, on a CPU",
         "max_iter (12000)": "the authors also ran 12,000 iterations for the direction norm and "
         "||W||_2"})  # fmt: skip
    return s


def entries() -> list[Entry]:
    return _experiments() + _sweeps()


# sweeps with no paper counterpart (tpri's own figures or tools), and smoke twins (`*_smoke`)
OWN_SWEEPS = {"length_scaling": "tpri's own figure (share of seeds solving vs T)", "tune_optuna": "a tool"}


# --- composing tpri's side -----------------------------------------------------------------


def _conf_dir() -> str:
    from tpri.configs.source import CONFIG_DIR

    return CONFIG_DIR


def configs():
    """The context in which `compose` reads tpri's conf/ (Hydra's initialisation)."""
    from hydra import initialize_config_dir, initialize_config_module

    from tpri.configs.schema import register_configs

    register_configs()
    source = _conf_dir()
    if source.startswith("pkg://"):
        return initialize_config_module(source.removeprefix("pkg://"), version_base="1.3")
    return initialize_config_dir(config_dir=source, version_base="1.3")


def compose(overrides) -> tuple[dict, dict]:
    """(the resolved job config as flat keys, the sweep's params parsed) for `overrides`; a
    sweep's job is composed with the first value of each swept key. Call inside `configs()`."""
    from hydra import compose as hydra_compose
    from omegaconf import OmegaConf

    cfg = hydra_compose("config", overrides=list(overrides), return_hydra_config=True)
    params = {k: _parse(str(v)) for k, v in (cfg.hydra.sweeper.params or {}).items()}
    if params:  # the first job of the sweep
        cfg = hydra_compose("config", overrides=[*overrides, *(f"{k}={v[0]}" for k, v in params.items())])
    job = OmegaConf.to_container(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]), resolve=True)
    return flatten(job), {f"sweep.{k}": v for k, v in params.items()}


def _parse(text: str) -> list:
    return [_value(v.strip()) for v in text.split(",")]


def _value(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "null": None}.get(text, text)


def flatten(cfg: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in cfg.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def same(a, b) -> bool:
    """Equal values: numbers to 1e-9 relative, lists element-wise as sets, the rest exactly."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(any(same(x, y) for y in b) for x in a)
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b))
    if numbers:
        return math.isclose(a, b, rel_tol=1e-9)
    return a == b and type(a) is type(b)


def tpri_values(entry: Entry) -> dict:
    """tpri's value of each of the entry's settings (missing: the string 'absent'); inside
    `configs()`."""
    job, params = compose(entry.overrides)
    both = {**job, **params}
    return {key: both.get(key, "absent") for key in entry.authors}


def compare(entry: Entry, values: dict) -> list[str]:
    """Problems of tpri's `values` against the entry: an undeclared difference, or a declared
    deviation of a setting that does not differ."""
    problems = []
    for key, theirs in entry.authors.items():
        differs = not same(values[key], theirs)
        if differs and key not in entry.deviations:
            problems.append(
                f"{entry.name}: {key} is {values[key]!r}, the authors' {theirs!r}, no deviation named"
            )
        if not differs and key in entry.deviations:
            problems.append(f"{entry.name}: {key} equals the authors' {theirs!r} but is named a deviation")
    return problems


# --- the table -------------------------------------------------------------------------------


def _show(value) -> str:
    if isinstance(value, list):
        return ", ".join(_show(v) for v in value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def markdown(rows: list[tuple[Entry, dict]]) -> str:
    lines = [
        "# The paper's settings: the authors' code vs tpri's configs",
        "",
        "Generated by `python -m tpri.configs.paper_settings` from `tpri/configs/paper_settings.py`",
        f"(the authors' values, read from {SOURCE}) and the configs as",
        "`python train.py <overrides> --cfg job` composes them (a sweep: with the first value of",
        "each swept key). `tests/test_paper_settings.py`",
        "fails when a config drifts from the authors' value without a named deviation, or when",
        "this file is stale. Columns: the setting, the authors' value, tpri's, and `=` (equal) or",
        "`DEVIATION` (named below the table).",
        "",
        "## Deviations common to every experiment",
        "",
        *[f"- {text}" for text in COMMON],
        "",
    ]
    for title, kind in (("Experiments", "experiment="), ("Figure sweeps", "sweep=")):
        lines += [f"## {title}", ""]
        for entry, values in rows:
            if entry.overrides[0].startswith(kind):
                lines += _section(entry, values)
    lines += ["## Sweeps without a paper counterpart", ""]
    lines += [f"- `{name}`: {what}" for name, what in OWN_SWEEPS.items()]
    lines += [
        "- every `*_smoke` sweep: a smaller twin of the sweep of the same name, not a paper setting",
        "",
    ]
    return "\n".join(lines)


def _section(entry: Entry, values: dict) -> list[str]:
    lines = [
        f"### {entry.name}: {entry.figure}",
        "",
        f"`python train.py {' '.join(entry.overrides)}`",
        "",
        "| setting | authors | tpri | |",
        "|---|---|---|---|",
    ]
    for key, theirs in entry.authors.items():
        mark = "DEVIATION" if key in entry.deviations else "="
        lines.append(f"| `{key}` | {_show(theirs)} | {_show(values[key])} | {mark} |")
    lines.append("")
    for topic, why in entry.deviations.items():
        lines.append(f"- deviation, `{topic}`: {why}")
    if entry.deviations:
        lines.append("")
    return lines


def build() -> tuple[str, list[str]]:
    """The table and the problems found."""
    rows, problems = [], []
    with configs():
        for entry in entries():
            values = tpri_values(entry)
            problems += compare(entry, values)
            rows.append((entry, values))
    return markdown(rows), problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tpri.configs.paper_settings", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when the committed table is stale")
    parser.add_argument("--out", type=Path, default=TABLE, help=f"where the table goes (default {TABLE})")
    args = parser.parse_args(argv)
    text, problems = build()
    for line in problems:
        print(line, file=sys.stderr)
    if args.check:
        current = args.out.read_text() if args.out.is_file() else None
        if current != text:
            print(f"{args.out} is stale: run python -m tpri.configs.paper_settings", file=sys.stderr)
            return 1
        return 1 if problems else 0
    from tpri.io import save_text

    save_text(text, args.out)
    print(f"wrote {args.out}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
