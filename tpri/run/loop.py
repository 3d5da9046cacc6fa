"""The job loop behind `python train.py`: one checked config -> one job directory.

    run(cfg, "outputs/runs/x")   # trains, or resumes from the checkpoint, or skips a finished job

Order of events (what is written when): the config is checked (nothing written on failure);
the directory is locked; what an earlier run left is read and damaged files recovered; a
different earlier run refuses the new one (nothing changed); a finished one is skipped; then
the job is built, its record written, and it trains, writing metrics at every evaluation,
checkpoints every `checkpoint_every` iterations and a summary that always tells the truth.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import time
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from tpri.algorithm.diagnostics import (
    bp_adjoints,
    bp_gradients,
    cosines,
    direction_norm,
    exact_norm,
    recurrent_weight,
    step_norms,
)
from tpri.algorithm.inverse import Diverged
from tpri.configs.rules import (
    ConfigError,
    check_config,
    check_overrides,
    check_resources,
    is_out_of_memory,
    out_of_memory_hint,
    plain_config,
)
from tpri.io import UnreadableFile, load_torch, save_text
from tpri.run.divergence import DivergenceRules
from tpri.run.job import Job, denormals_flushed
from tpri.run.provenance import now, provenance, stretch, whole_git
from tpri.run.record import Record, csv_text
from tpri.run.rundir import (
    BEST,
    CHECKPOINT,
    GRADIENTS,
    METRICS,
    Checkpoint,
    Previous,
    RunDir,
    RunDirError,
    trajectory_config,
)
from tpri.run.signals import Interrupted, SignalCatcher, in_worker, launcher_gone

log = logging.getLogger("tpri")


class JobFailed(Exception):
    """The job ended with status `failed` (its summary holds the reason)."""


@dataclass
class RunContext:
    """What the launcher knows about a job beyond its config."""

    overrides: list[str] = field(default_factory=list)  # as typed on the command line
    hydra_yaml: str | None = None  # Hydra's settings, recorded as .hydra/hydra.yaml
    tag: str = ""  # prefix of the job's log lines, e.g. "[job 3] " in a sweep


def run(cfg: Mapping, output_dir: str | Path, context: RunContext | None = None) -> dict:
    """Train one job described by `cfg` (the composed config, as a dict or DictConfig) into
    `output_dir` and return its summary.

    Raises ConfigError (bad config) or RunDirError (dir busy, unwritable, holding another
    run) before changing anything; JobFailed after recording status `failed`; Interrupted
    after recording status `interrupted` on a terminating signal (tpri.run.signals.STOP_SIGNALS)."""
    cfg, context = plain_config(cfg), context or RunContext()
    output_dir = _output_path(output_dir)
    try:
        check_config(cfg)
        check_overrides(cfg, context.overrides)
        check_resources(cfg)
        return _run_checked(cfg, output_dir, context)
    except ConfigError:
        RunDir(output_dir).discard_if_empty()  # what Hydra made for a rejected first run
        raise


def _output_path(output_dir) -> Path:
    """`output_dir` as a Path; an empty one (which would write into the current directory)
    or one of another type is refused."""
    if not isinstance(output_dir, (str, Path)):
        raise TypeError(f"output_dir must be a path (str or Path), got {type(output_dir).__name__}")
    if not str(output_dir).strip():
        raise RunDirError(f"output_dir={str(output_dir)!r} is empty; give the job's directory")
    return Path(output_dir)


def _run_checked(cfg: dict, output_dir: str | Path, context: RunContext) -> dict:
    gone = launcher_gone()
    if gone:
        raise RunDirError(f"{output_dir}: not started, {gone}")
    with SignalCatcher() as signals, RunDir(output_dir) as rundir, denormals_flushed():
        prev = rundir.read_previous()
        for note in prev.notes:
            log.warning("%s%s", context.tag, note)
        rundir.check_same_run(cfg, prev)
        if not cfg.get("restart"):
            rundir.check_resumable(cfg, prev)
        try:
            rundir.recover(prev)  # accepted: now damaged files may be moved aside
            if cfg.get("restart"):
                prev = rundir.restart(prev)
            if prev.finished(cfg["max_iter"]):
                return _skip(cfg, rundir, prev, context)
            return Session(cfg, rundir, context, signals).start(prev)
        except OSError as err:  # what was written before stays whole (atomic writes)
            raise RunDirError(f"{rundir.path}: cannot write: {err}") from None


def _skip(cfg: dict, rundir: RunDir, prev: Previous, context: RunContext) -> dict:
    """A finished job: files that are missing or disagree with its final checkpoint (csv rows
    of a later killed stretch, a deleted summary, record or best.pt) are rewritten from it;
    files that agree are left byte-identical."""
    checkpoint = prev.checkpoint
    if checkpoint is not None:
        for path in reconcile(rundir, checkpoint):
            log.warning("%srewrote %s from the checkpoint", context.tag, path)
    summary = prev.summary
    stale = summary is None or (summary["status"], summary["iteration"]) != (prev.status, prev.iteration)
    if stale and checkpoint and checkpoint.summary is not None:
        summary = checkpoint.summary
        rundir.save_summary(summary)
        log.warning("%srebuilt %s from the checkpoint", context.tag, rundir.path / "summary.json")
    if prev.record is None:  # the record of what ran: this config, at the length it ran
        ran = {**cfg, "max_iter": prev.iteration} if prev.status == "completed" else cfg
        rundir.write_record(ran, context.overrides, context.hydra_yaml)
        log.warning("%srebuilt the record %s", context.tag, rundir.path / ".hydra")
    log.info(
        "%s%s: already %s at iteration %d, skipping", context.tag, rundir.path, prev.status, prev.iteration
    )
    return summary or {"status": prev.status, "iteration": prev.iteration}


def reconcile(rundir: RunDir, checkpoint: Checkpoint) -> list[Path]:
    """Make metrics.csv, gradients.csv and best.pt agree with `checkpoint`; the paths rewritten."""
    rewritten = []
    for name, rows in ((METRICS, checkpoint.metrics), (GRADIENTS, checkpoint.gradients)):
        path = rundir.path / name
        text = csv_text(rows) if rows else None
        if text is not None and (not path.exists() or path.read_text() != text):
            save_text(text, path)
            rewritten.append(path)
    best = checkpoint.best
    if best is not None and _saved_iteration(rundir.path / BEST) != best["iteration"]:
        rundir.save_best(best)
        rewritten.append(rundir.path / BEST)
    return rewritten


def _saved_iteration(path: Path) -> int | None:
    try:
        return load_torch(path)["iteration"]
    except (UnreadableFile, TypeError, KeyError):  # missing or damaged: rewrite it
        return None


class Session:
    """One process's stretch of a job: from its start or checkpoint to its end or a stop."""

    def __init__(self, cfg: dict, rundir: RunDir, context: RunContext, signals: SignalCatcher):
        self.cfg, self.rundir, self.context, self.signals = cfg, rundir, context, signals
        self.started, self.clock, self.session_train = now(), time.perf_counter(), 0.0
        self.job: Job | None = None
        self.record: Record | None = None
        self.provenance: dict = {}
        self.best: dict | None = None  # best.pt's content, also kept in every checkpoint
        self.earlier: list[dict] = []  # the stretches of earlier processes (provenance)
        self.checkpointed: int | None = None  # iteration of the last checkpoint saved
        self.rules = DivergenceRules.from_config(cfg)

    # --- start ---------------------------------------------------------------------------
    def start(self, prev: Previous) -> dict:
        cfg, out = self.cfg, self.rundir.path
        try:
            self.job = Job(cfg)
        except ConfigError:
            raise
        except Exception as err:  # data files missing or damaged, a resource error
            self.rundir.write_record(cfg, self.context.overrides, self.context.hydra_yaml)
            self.record = Record(out, "classification", tag=self.context.tag)
            if prev.checkpoint is not None:  # the summary tells where the job had got to
                self.record.restore(prev.checkpoint)
            if is_out_of_memory(err):
                hint = out_of_memory_hint(cfg)
                self._write_summary("failed", f"out of memory building the job; {hint}")
                raise JobFailed(f"{out}: out of memory building the job; {hint}") from None
            self._write_summary("failed", f"{type(err).__name__}: {err}")
            raise JobFailed(f"{out}: failed: {err}") from err
        self.provenance = provenance(self.job.device, self.context.overrides, self.started)
        trackers = _trackers(cfg, out, self.context.tag)
        self.rundir.write_record(cfg, self.context.overrides, self.context.hydra_yaml)
        self.record = Record(out, self.job.task.objective, trackers, self.context.tag)
        for tracker in trackers:
            tracker.log_params(cfg)
        resumed = prev.checkpoint is not None and self._resume(prev.checkpoint)
        if resumed:
            log.info("%sresuming %s from iteration %d", self.context.tag, out, self.record.iteration)
        return self._train(evaluate_first=not resumed)

    def _resume(self, checkpoint: Checkpoint) -> bool:
        """Load a checkpoint; one that does not fit this job (shapes, states) is moved aside
        and the job starts from scratch (False)."""
        try:
            self.job.load(checkpoint)
        except Exception as err:
            log.warning(
                "%s%s does not fit this job (%s: %s); starting from scratch",
                self.context.tag,
                self.rundir.path / CHECKPOINT,
                type(err).__name__,
                str(err).splitlines()[0],
            )
            self.rundir.set_aside(CHECKPOINT)
            self.job = Job(self.cfg)  # fresh weights, optimizer and streams
            return False
        self.record.restore(checkpoint)
        self.best = checkpoint.best
        self.checkpointed = reached = checkpoint.iteration
        self.earlier = [s for s in checkpoint.stretches or [] if s["from_iteration"] < reached]
        for s in self.earlier:  # a later stretch killed after this checkpoint: what it kept
            s["to_iteration"] = min(s["to_iteration"], reached)
        if not self.earlier and reached > 0:  # a checkpoint of tpri 0.1.0
            self.earlier = [{"from_iteration": 0, "to_iteration": reached, "git": None}]
        reconcile(self.rundir, checkpoint)
        return True

    # --- the loop ------------------------------------------------------------------------
    def _train(self, evaluate_first: bool) -> dict:
        try:
            return self._train_to_end(evaluate_first)
        except _Stop as stop:  # recorded `interrupted` with its checkpoint
            self._hand_over(stop)

    def _hand_over(self, stop: _Stop) -> typing.NoReturn:
        """After the interruption is recorded: a signal goes to the handler installed before
        ours (submitit's checkpoint-and-requeue, which ends the process) or ends the job as
        Interrupted; a dead launcher ends it as JobFailed. Whatever they raise, the record
        stays `interrupted`: the job resumes from its checkpoint."""
        if self.signals.received:
            self.signals.stop(
                f"{self.rundir.path}: interrupted at iteration {self.record.iteration} ({stop.reason})"
            )
        raise JobFailed(f"{self.rundir.path}: interrupted ({stop.reason})") from None

    def _train_to_end(self, evaluate_first: bool) -> dict:
        try:
            if evaluate_first:
                self._evaluate()
            self._write_summary("running")
            try:
                with _bar(self.cfg["max_iter"], self.record.iteration) as bar:
                    self._loop(bar)
            except Diverged as err:
                log.warning("%sdiverged: %s", self.context.tag, err)
                return self._finish("diverged", str(err))
            except _Stop as stop:
                self._finish("interrupted", stop.reason)
                raise
            if self.record.rows[-1]["iteration"] != self.record.iteration:
                self._evaluate()  # resumed past a smaller max_iter: the state it ends with
            return self._finish("completed", None)
        except OSError as err:  # a full disk, a vanished dir: the files keep their last whole state
            self._finish_quietly("failed", f"{type(err).__name__}: {err}")
            raise RunDirError(f"{self.rundir.path}: cannot write: {err}") from None
        except (JobFailed, Interrupted, _Stop):
            raise
        except BaseException as err:  # out of memory: one line; else a bug: recorded, then raised
            if is_out_of_memory(err):
                hint = out_of_memory_hint(self.cfg)
                self._finish_quietly("failed", f"out of memory ({' '.join(str(err).split())[:200]}); {hint}")
                raise JobFailed(f"{self.rundir.path}: out of memory; {hint}") from None
            self._finish_quietly("failed", f"{type(err).__name__}: {err}")
            raise

    def _loop(self, bar) -> None:
        cfg, job, record = self.cfg, self.job, self.record
        for it in range(record.iteration, cfg["max_iter"]):
            if self.signals.received:
                raise _Stop(signal.Signals(self.signals.received).name)
            x, y = (t.to(job.device) for t in job.task.sample(cfg["batch_size"], job.generator))
            tick = time.perf_counter()
            job.optimizer.zero_grad(set_to_none=True)
            loss = self._direction(x, y, it)
            # diagnostics of the update from an evaluated iterate, on its training batch
            diagnose = (cfg["log_gradients"] or cfg["log_cosine"]) and it % cfg["eval_every"] == 0
            if diagnose:
                before = recurrent_weight(job.model).detach().clone()
                values = self._diagnostics(it, x, y)
            job.optimizer.step()
            done = record.iteration = it + 1  # the update is applied: iteration `done` happened
            self._check_step(loss, done)
            elapsed = time.perf_counter() - tick
            record.train_time += elapsed
            self.session_train += elapsed
            if diagnose:
                record.annotate({**values, **self._weight_norms(before)})
            bar.update(1)
            evaluated = done % cfg["eval_every"] == 0 or done == cfg["max_iter"]
            if evaluated:
                row = self._evaluate()
                bar.set_postfix(train_loss=f"{row['train_loss']:.4g}", test_acc=f"{row['test_accuracy']:.3f}")
            due = self.rules.loss_due(done, cfg["max_iter"], evaluated)
            reason = due and self.rules.loss_reason(record.rows, done)
            if reason:
                raise Diverged(f"{reason}; {self._cause()}")
            if evaluated:
                self._write_summary("running")
                gone = launcher_gone()
                if gone:
                    raise _Stop(gone)
            if cfg["checkpoint_every"] and done % cfg["checkpoint_every"] == 0 and done < cfg["max_iter"]:
                self._save_checkpoint()

    def _direction(self, x, y, it: int):
        """The update direction into p.grad; a failure names its likely cause."""
        try:
            return self.job.direction.backward(self.job.model, x, y, self.job.task.loss)
        except Diverged as err:
            # `it` updates were applied: the closing line's iteration, named once
            fault = f"numerical fault in the update from iteration {it}: {err}"
            raise Diverged(f"{fault}; {self._cause()}") from None

    def _cause(self) -> str:
        """Which knob most likely caused a divergence, from the state of the parameters."""
        cfg = self.cfg
        broken = [n for n, p in self.job.model.named_parameters() if not torch.isfinite(p).all()]
        if broken:
            return f"parameters {broken} became non-finite: the step size lr={cfg['lr']} is too large"
        steps = f"the step size lr={cfg['lr']}"
        if "lr_target" in cfg["optimizer"]:  # TP, DTP: the top target's step moves every target
            steps += f" or the top-target step lr_target={cfg['lr_target']}"
        if "reg" in cfg["optimizer"]:
            steps += f" (for reg={cfg['reg']})"
        return f"parameters finite: {steps} is too large"

    def _check_step(self, loss, done: int) -> None:
        """One host sync per iteration: a non-finite loss or recurrent weight (a numerical
        fault), or tpri's weight-norm rule when it is on."""
        norm = recurrent_weight(self.job.model).detach().norm()
        fault = ~torch.isfinite(loss) | ~torch.isfinite(norm)
        broken = self.rules.weight_norm_broken(norm)
        if bool(fault if broken is None else fault | broken):
            what = "batch loss" if not torch.isfinite(loss) else "recurrent weight"
            if not (torch.isfinite(loss) and torch.isfinite(norm)):
                raise Diverged(f"numerical fault: non-finite {what} at iteration {done}; {self._cause()}")
            raise Diverged(f"{self.rules.weight_norm_reason(norm.item(), done)}; {self._cause()}")

    def _evaluate(self) -> dict:
        is_best = self.record.record(self.record.iteration, self.job.evaluate())
        if is_best:
            self.best = self.job.weights(iteration=self.record.iteration, metrics=self.record.rows[-1])
            self.rundir.save_best(self.best)
        return self.record.rows[-1]

    def _diagnostics(self, it: int, x, y) -> dict:
        job, cfg = self.job, self.cfg
        values = {}
        if cfg["log_gradients"]:
            adjoints = bp_adjoints(job.model, x, y, job.task.loss)  # (B, T, d)
            displacements = job.direction.displacements
            self.record.add_gradients(
                it, step_norms(adjoints), None if displacements is None else step_norms(displacements)
            )
            values["direction_norm"] = direction_norm(job.model)  # p.grad: before lr and momentum
        if cfg["log_cosine"]:
            directions = {n: p.grad for n, p in job.model.named_parameters()}
            grads = bp_gradients(job.model, x, y, job.task.loss)
            values.update({f"cos_{n}": c for n, c in cosines(directions, grads).items()})
        return values

    def _weight_norms(self, before: torch.Tensor) -> dict:
        W = recurrent_weight(self.job.model).detach()
        return {
            "update_norm": exact_norm((W - before).flatten(), dim=0).item(),
            "w_spectral_norm": torch.linalg.matrix_norm(W, ord=2).item(),
        }

    # --- the end -------------------------------------------------------------------------
    def _write_summary(self, status: str, reason: str | None = None) -> dict:
        summary = self._summary(status, reason)
        self.rundir.save_summary(summary)
        return summary

    def _summary(self, status: str, reason: str | None) -> dict:
        record = self.record
        done = record.iteration - (record.resumed_from or 0)
        ended = None if status == "running" else now()
        stretches = self._stretches(ended)
        return {
            **record.summary(status, reason),
            "checkpoint_iteration": self.checkpointed,
            "its_per_sec": done / self.session_train if self.session_train else None,
            "wall_time": time.perf_counter() - self.clock,
            "train_time": record.train_time,
            "version": self.provenance.get("versions", {}).get("tpri"),
            # this process's provenance; `git` and `stretches` cover every stretch of the job
            "provenance": {
                **self.provenance,
                "ended": ended,
                "git": whole_git(stretches),
                "stretches": stretches,
            },
            "config": trajectory_config(self.cfg),
        }

    def _stretches(self, ended: str | None) -> list[dict]:
        """The earlier processes' stretches (from the checkpoint) and this one's so far."""
        first = self.record.resumed_from or 0
        return [*self.earlier, stretch(self.provenance, first, self.record.iteration, ended)]

    def _save_checkpoint(self, ended: str | None = None, **extra) -> None:
        stretches = self._stretches(ended)
        state = {**self.job.state(), **self.record.state()}
        self.rundir.save_checkpoint(Checkpoint(**state, best=self.best, stretches=stretches, **extra))
        self.checkpointed = self.record.iteration

    def _finish(self, status: str, reason: str | None) -> dict:
        """The final checkpoint (holding the summary, to rebuild it from), then the summary:
        a summary never claims an end whose state was not saved."""
        self.checkpointed = self.record.iteration  # the checkpoint below, which holds the summary
        summary = self._summary(status, reason)
        ended = summary["provenance"]["ended"]
        self._save_checkpoint(ended, status=status, reason=reason, summary=summary)
        self.rundir.save_summary(summary)
        for tracker in self.record.trackers:
            tracker.close(status)
        log.info(self.record.end_line(status, reason, time.perf_counter() - self.clock))
        return summary

    def _finish_quietly(self, status: str, reason: str) -> None:
        """Record a failure if the disk still allows it; never raise over the first error."""
        try:
            self._write_summary(status, reason)
        except OSError:
            pass
        for tracker in self.record.trackers:
            tracker.close(status)  # never raises (tpri.run.trackers.Guarded)
        log.error("%s%s: %s", self.context.tag, status, reason)


class _Stop(Exception):
    """Stop between iterations (signal, dead launcher), checkpoint first."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _trackers(cfg: dict, out: Path, tag: str) -> list:
    if not cfg.get("logger"):
        return []
    from tpri.run.trackers import make_trackers

    return make_trackers(cfg["logger"], out, f"{out.parent.name}/{out.name}", tag)


@contextlib.contextmanager
def _bar(total: int, initial: int):
    """A progress bar on a terminal, with log lines printed around it; nothing otherwise, nor
    in a launcher's worker (parallel jobs would redraw one line in turn)."""
    interactive = sys.stderr.isatty() and not in_worker()
    with contextlib.ExitStack() as stack:
        if interactive:
            stack.enter_context(logging_redirect_tqdm(loggers=[logging.getLogger()]))
        yield stack.enter_context(
            tqdm(
                total=total,
                initial=initial,
                disable=not interactive,
                unit="it",
                dynamic_ncols=True,
                mininterval=0.2,
            )
        )
