"""Run directories never lie: one writer, refused reruns change nothing, damaged files are
recovered, signals and full disks leave an honest status."""

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import ROOT, TINY, compose_config, read_metrics, train_cli

from tpri import io
from tpri.run import RunDirError, RunRefused, load_model, run
from tpri.run.signals import LAUNCHER_ENV


def snapshot(folder: Path, skip=("train.log",)) -> dict:
    """Every file below `folder` (relative path -> bytes)."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name not in skip
    }


def summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A completed CLI run (60 iterations) to copy from."""
    out = tmp_path_factory.mktemp("finished") / "run"
    train_cli(*TINY, "max_iter=60", "eval_every=20", f"hydra.run.dir={out}")
    return out


def copy_of(finished: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    for path, data in snapshot(finished, skip=()).items():
        (out / path).parent.mkdir(parents=True, exist_ok=True)
        (out / path).write_bytes(data)
    return out


# --- refused reruns -----------------------------------------------------------------------


@pytest.mark.parametrize("bad", [["lr=0.2"], ["lr=abc"], ["+foo=1"]])
def test_a_refused_rerun_leaves_every_file_byte_identical(finished, tmp_path, bad):
    out = copy_of(finished, tmp_path)
    before, log_before = snapshot(out), (out / "train.log").read_text()
    proc = train_cli(*TINY, "max_iter=60", "eval_every=20", *bad, f"hydra.run.dir={out}", check=False)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert snapshot(out) == before
    assert (out / "train.log").read_text().startswith(log_before)  # may only gain lines


def test_refusal_names_the_changed_keys(finished, tmp_path):
    out = copy_of(finished, tmp_path)
    cfg = compose_config([*TINY, "max_iter=60", "eval_every=20", "lr=0.2"])
    with pytest.raises(RunRefused) as refused:  # optimizer.lr follows lr: named once
        run(cfg, out)
    assert "another config: lr changed 0.1 -> 0.2; nothing was changed" in str(refused.value)
    assert "optimizer.lr" not in str(refused.value)
    cfg = compose_config([*TINY, "max_iter=60", "eval_every=20", "lr=0.2", "seed=3"])
    with pytest.raises(RunRefused, match=r"another config: lr changed 0.1 -> 0.2, seed changed 0 -> 3;"):
        run(cfg, out)


def test_the_record_is_the_jobs_own_resolved_config(finished):
    import yaml

    record = yaml.safe_load((finished / ".hydra" / "config.yaml").read_text())
    assert record["optimizer"]["lr"] == 0.1 and "hydra" not in record  # resolved, no ${lr}
    assert "dataset.length=20" in yaml.safe_load((finished / ".hydra" / "overrides.yaml").read_text())
    assert "runtime" in yaml.safe_load((finished / ".hydra" / "hydra.yaml").read_text())["hydra"]


# --- one writer -----------------------------------------------------------------------------


def _start(out: Path, *args, env=None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *TINY, *args, f"hydra.run.dir={out}"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def _wait_for_iteration(out: Path, iteration: int, proc: subprocess.Popen, timeout=120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            if summary(out)["iteration"] >= iteration:
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"{out} never reached iteration {iteration}")


def test_a_second_writer_is_refused_while_the_lock_is_held(finished, tmp_path):
    from tpri.run.rundir import RunDir

    out = copy_of(finished, tmp_path)
    before = snapshot(out, skip=("train.log", "run.lock"))
    with RunDir(out):  # this process is the live writer
        proc = train_cli(*TINY, "max_iter=80", "eval_every=20", f"hydra.run.dir={out}", check=False)
        assert (out / "run.lock").read_text().split()[0] == str(os.getpid())
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(f"{out} is in use by process {os.getpid()}")
    assert snapshot(out, skip=("train.log", "run.lock")) == before


@pytest.mark.slow
@pytest.mark.parametrize("lock_deleted", [False, True])
def test_a_second_writer_is_refused_and_the_first_run_is_not_harmed(tmp_path, lock_deleted):
    out = tmp_path / "run"
    first = _start(out, "max_iter=1500", "eval_every=50", "checkpoint_every=500")
    _wait_for_iteration(out, 50, first)
    if lock_deleted:  # by hand, e.g. after a SIGKILL left a stale one elsewhere
        (out / "run.lock").unlink()
    second = train_cli(
        *TINY, "max_iter=1400", "eval_every=50", "checkpoint_every=500", f"hydra.run.dir={out}", check=False
    )
    assert second.returncode != 0
    assert str(out) in second.stderr and "in use by process" in second.stderr
    assert lock_deleted or str(first.pid) in second.stderr
    assert "Traceback" not in second.stderr
    _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    assert summary(out)["status"] == "completed" and summary(out)["iteration"] == 1500
    assert int(read_metrics(out / "metrics.csv")[-1]["iteration"]) == 1500
    assert not (out / "run.lock").exists()


# --- signals --------------------------------------------------------------------------------


STOPS = [
    (signal.SIGTERM, 143),
    (signal.SIGINT, 130),
    (signal.SIGUSR2, 143),
    (signal.SIGHUP, 129),  # terminal closed, ssh dropped
    (signal.SIGQUIT, 131),  # Ctrl-\\
    (signal.SIGUSR1, 138),  # SLURM --signal=USR1@...
    (signal.SIGXCPU, 152),  # CPU-time limit (ulimit -t, some schedulers)
]


@pytest.mark.parametrize("sig, code", STOPS)
def test_a_signal_checkpoints_and_records_interrupted(tmp_path, sig, code):
    out = tmp_path / "run"
    proc = _start(out, "max_iter=100000", "eval_every=50", "checkpoint_every=0")
    _wait_for_iteration(out, 100, proc)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code
    assert "Traceback" not in stderr and "interrupted at iteration" in stderr
    state = summary(out)
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["status"] == "interrupted" and state["iteration"] >= 100
    assert checkpoint["iteration"] == state["iteration"]
    assert signal.Signals(sig).name in state["reason"]
    assert not (out / "run.lock").exists()  # released: a rerun resumes at once
    assert len(stderr.strip().splitlines()) == 1, stderr


@pytest.mark.slow
def test_an_interrupted_run_resumes_to_the_uninterrupted_result(tmp_path):
    args = ["max_iter=600", "eval_every=50", "checkpoint_every=0"]
    out, clean = tmp_path / "run", tmp_path / "clean"
    proc = _start(out, *args)
    _wait_for_iteration(out, 100, proc)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    stopped_at = summary(out)["iteration"]
    assert 100 <= stopped_at < 600
    train_cli(*TINY, *args, f"hydra.run.dir={out}")
    assert summary(out)["resumed_from"] == stopped_at
    train_cli(*TINY, *args, f"hydra.run.dir={clean}")
    assert read_metrics(out / "metrics.csv") == read_metrics(clean / "metrics.csv")


# --- damaged files (in-process: fast) -------------------------------------------------------


@pytest.fixture
def cfg():
    return compose_config([*TINY, "max_iter=40", "eval_every=20"])


def test_a_garbage_checkpoint_of_a_completed_run_is_moved_aside_and_the_run_skipped(cfg, tmp_path):
    run(cfg, tmp_path)
    metrics = (tmp_path / "metrics.csv").read_bytes()
    (tmp_path / "checkpoint.pt").write_bytes(b"garbage")
    assert run(cfg, tmp_path)["status"] == "completed"
    assert not (tmp_path / "checkpoint.pt").exists()
    assert [p.read_bytes() for p in tmp_path.glob("checkpoint.pt.corrupt-*")] == [b"garbage"]
    assert (tmp_path / "metrics.csv").read_bytes() == metrics


def test_a_truncated_checkpoint_of_an_unfinished_run_restarts_it_from_scratch(cfg, tmp_path):
    run({**cfg, "max_iter": 20}, tmp_path / "half")
    data = (tmp_path / "half" / "checkpoint.pt").read_bytes()
    (tmp_path / "half" / "checkpoint.pt").write_bytes(data[: len(data) // 2])
    state = summary(tmp_path / "half")
    (tmp_path / "half" / "summary.json").write_text(json.dumps({**state, "status": "running"}))
    result = run(cfg, tmp_path / "half")
    assert result["status"] == "completed" and result["resumed_from"] is None
    run(cfg, tmp_path / "clean")
    assert read_metrics(tmp_path / "half" / "metrics.csv") == read_metrics(tmp_path / "clean" / "metrics.csv")


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        "[]",
        '{"status": "done", "iteration": 40}',
        '{"status": "completed"}',
        '{"status": "completed", "iteration": "x"}',
    ],
)
def test_a_malformed_summary_is_rebuilt_from_the_checkpoint(cfg, tmp_path, text):
    first = run(cfg, tmp_path)
    (tmp_path / "summary.json").write_text(text)
    run(cfg, tmp_path)
    rebuilt = summary(tmp_path)
    assert (rebuilt["status"], rebuilt["iteration"], rebuilt["final"]) == ("completed", 40, first["final"])


def test_a_deleted_metrics_file_of_a_finished_run_is_rewritten(cfg, tmp_path):
    run(cfg, tmp_path)
    before = (tmp_path / "metrics.csv").read_bytes()
    (tmp_path / "metrics.csv").unlink()
    run(cfg, tmp_path)
    assert (tmp_path / "metrics.csv").read_bytes() == before


def test_stale_temp_files_are_removed_on_the_next_run(cfg, tmp_path):
    run(cfg, tmp_path)
    stale = [
        tmp_path / ".checkpoint.pt.abc_1234.tmp",
        tmp_path / ".metrics.csv.x7Yz_0q9.tmp",
        tmp_path / ".hydra" / ".config.yaml.abcdefgh.tmp",
    ]
    kept = [tmp_path / ".notes.tmp", tmp_path / ".metrics.csv.mine.tmp"]  # not ours: left alone
    for path in stale + kept:
        path.write_bytes(b"half")
    run(cfg, tmp_path)
    assert not any(p.exists() for p in stale) and all(p.exists() for p in kept)


def test_only_temp_files_of_writers_that_are_gone_are_removed(cfg, tmp_path):
    run(cfg, tmp_path)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    gone = tmp_path / f".metrics.csv.{int(dead.stdout)}-abcd1234.tmp"
    live = tmp_path / f".summary.json.{os.getppid()}-abcd1234.tmp"  # a live writer's
    for path in (gone, live):
        path.write_bytes(b"half")
    assert io.remove_stale_temps(tmp_path, ["metrics.csv", "summary.json"]) == [gone]
    assert live.exists()


# --- I/O faults -----------------------------------------------------------------------------


def test_a_full_disk_at_the_last_checkpoint_records_failed_keeps_earlier_files(cfg, tmp_path, monkeypatch):
    cfg = {**cfg, "checkpoint_every": 20}
    real, calls = io.save_torch, []

    def save_torch(obj, path):
        if Path(path).name == "checkpoint.pt":
            calls.append(obj["iteration"])
            if obj["iteration"] == 40:
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(obj, path)

    monkeypatch.setattr(io, "save_torch", save_torch)
    with pytest.raises(RunDirError, match="No space left"):
        run(cfg, tmp_path)
    state = summary(tmp_path)
    assert (state["status"], state["iteration"]) == ("failed", 40) and "No space" in state["reason"]
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["iteration"] == 20
    assert [int(r["iteration"]) for r in read_metrics(tmp_path / "metrics.csv")] == [0, 20, 40]
    assert not list(tmp_path.glob(".*.tmp"))
    monkeypatch.setattr(io, "save_torch", real)
    assert run(cfg, tmp_path)["status"] == "completed"  # the rerun resumes from iteration 20


def _small_tmpfs(path: Path, size: str) -> bool:
    if os.geteuid() != 0:
        return False
    path.mkdir()
    return (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
        ).returncode
        == 0
    )


def test_a_real_full_disk_gives_one_line_and_status_failed(tmp_path):
    disk = tmp_path / "disk"
    if not _small_tmpfs(disk, "48k"):
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        proc = train_cli(*TINY, "max_iter=300", "eval_every=50", f"hydra.run.dir={disk / 'run'}", check=False)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        assert "No space left on device" in proc.stderr.strip().splitlines()[-1]
        state = summary(disk / "run")
        assert state["status"] == "failed" and "No space" in state["reason"]
    finally:
        subprocess.run(["umount", str(disk)], check=False)


@pytest.mark.parametrize("where", ["file", "under_file"])
def test_an_output_dir_that_cannot_be_a_directory_gives_one_line(tmp_path, where):
    blocker = tmp_path / "blocker"
    blocker.write_text("keep me")
    out = blocker if where == "file" else blocker / "run"
    proc = train_cli(*TINY, "max_iter=20", f"hydra.run.dir={out}", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == f"cannot use output dir {out}: {blocker} is not a directory"
    assert blocker.read_text() == "keep me"


def test_a_read_only_output_location_gives_one_line(tmp_path):
    disk = tmp_path / "ro"
    if not _small_tmpfs(disk, "1m") or subprocess.run(["mount", "-o", "remount,ro", str(disk)]).returncode:
        pytest.skip("cannot mount a read-only tmpfs here (needs root)")
    try:
        proc = train_cli(*TINY, "max_iter=20", f"hydra.run.dir={disk / 'run'}", check=False)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        assert "read-only" in proc.stderr and str(disk) in proc.stderr
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_files_follow_the_umask(cfg, tmp_path):
    old = os.umask(0o002)
    try:
        run(cfg, tmp_path)
    finally:
        os.umask(old)
    for name in ("metrics.csv", "summary.json", "checkpoint.pt", "best.pt", ".hydra/config.yaml"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o664, name


# --- launchers that died --------------------------------------------------------------------


def test_a_worker_whose_launcher_died_does_not_start_a_job(cfg, tmp_path, monkeypatch):
    dead = subprocess.Popen(["true"])
    dead.wait()
    monkeypatch.setenv(LAUNCHER_ENV, f"{dead.pid} {socket.gethostname()}")
    with pytest.raises(RunDirError, match=f"launching process {dead.pid} died"):
        run(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_running_worker_stops_when_its_launcher_dies(tmp_path):
    launcher = subprocess.Popen(["sleep", "300"])
    out = tmp_path / "run"
    cfg = compose_config([*TINY, "max_iter=100000", "eval_every=50", "checkpoint_every=0"])
    worker = subprocess.Popen(  # a launcher's worker: runs jobs, is not itself the launcher
        [
            sys.executable,
            "-c",
            "import json, sys; from tpri.run import run; run(json.loads(sys.argv[1]), sys.argv[2])",
            json.dumps(cfg),
            str(out),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, LAUNCHER_ENV: f"{launcher.pid} {socket.gethostname()}"},
    )
    _wait_for_iteration(out, 50, worker)
    launcher.kill()
    launcher.wait()
    worker.communicate(timeout=60)
    assert worker.returncode != 0
    state = summary(out)
    assert state["status"] == "interrupted" and f"launching process {launcher.pid} died" in state["reason"]


# --- best weights ---------------------------------------------------------------------------


def test_best_and_last_weights_load_back(cfg, tmp_path):
    result = run({**cfg, "max_iter": 60}, tmp_path)
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    assert best["iteration"] == result["best"]["iteration"]
    assert best["metrics"]["test_accuracy"] == result["best"]["test_accuracy"]
    x = torch.zeros(2, 20, 6)
    last = load_model(tmp_path, which="last")
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(v, state[k]) for k, v in last.state_dict().items())
    assert load_model(tmp_path, which="best")(x).shape == (2, 4)
    with pytest.raises(ValueError, match="'best', 'last'"):
        load_model(tmp_path, which="first")


# --- terminal -------------------------------------------------------------------------------


def test_sweep_log_lines_carry_the_job_number_and_each_job_ends_with_one_summary_line(tmp_path):
    proc = train_cli(*TINY, "max_iter=20", "eval_every=10", f"hydra.sweep.dir={tmp_path}", "-m", "seed=0,1")
    out = proc.stdout.splitlines()
    assert out[0].startswith(f"sweep dir: {tmp_path}  (2 jobs, launcher basic; stopped? resume: ")
    assert out[-4:] == [
        f"sweep done: 2 jobs: 2 completed, 0 diverged, 0 failed, 0 interrupted; {tmp_path}",
        f"  table:   tpri-status {tmp_path}",
        f"  collect: python scripts/collect.py {tmp_path}",
        f"  plot:    tpri-plot convergence {tmp_path}",
    ]
    lines = [line for line in out if "[tpri]" in line]
    for job in "01":
        mine = [line for line in lines if f"[job {job}] " in line]
        assert len(mine) == 5  # three evaluations, the closing line, the count of jobs done
        assert mine.pop().endswith(f"[job {job}] {int(job) + 1} of 2 jobs done")
        end = summary(tmp_path / job)
        best = end["best"]
        assert f"[job {job}] completed at iteration 20: test_accuracy final " in mine[-1]
        assert f"best {best['test_accuracy']:.4g} at it {best['iteration']}; {tmp_path / job} [" in mine[-1]


# --- red-team cases -------------------------------------------------------------------------


def test_a_rejected_config_never_removes_a_dir_someone_holds_or_a_log_with_content(cfg, tmp_path):
    from tpri.configs.rules import ConfigError
    from tpri.run.rundir import RunDir

    held, logged = tmp_path / "held", tmp_path / "logged"
    for folder in (held, logged):
        folder.mkdir()
    (logged / "train.log").write_text("my notes\n")
    with RunDir(held):
        with pytest.raises(ConfigError):
            run({**cfg, "lr": "abc"}, held)
        assert (held / "run.lock").exists()
    with pytest.raises(ConfigError):
        run({**cfg, "lr": "abc"}, logged)
    assert (logged / "train.log").read_text() == "my notes\n"


def test_a_refused_rerun_does_not_move_a_damaged_checkpoint_or_remove_temp_files(cfg, tmp_path):
    run(cfg, tmp_path)
    (tmp_path / "checkpoint.pt").write_bytes(b"")
    (tmp_path / ".checkpoint.pt.abcd1234.tmp").write_bytes(b"half")
    before = snapshot(tmp_path)
    with pytest.raises(RunRefused):
        run({**cfg, "lr": 0.2, "optimizer": {**cfg["optimizer"], "lr": 0.2}}, tmp_path)
    assert snapshot(tmp_path) == before


def test_rows_and_best_weights_of_a_killed_later_stretch_are_dropped(cfg, tmp_path):
    result = run(cfg, tmp_path)  # completed at 40
    first_rows = (tmp_path / "metrics.csv").read_text()
    best_iteration = torch.load(tmp_path / "best.pt", weights_only=True)["iteration"]
    # a longer rerun killed before its next checkpoint left rows, a best.pt and a summary
    rows = first_rows + "60,1.0,0.1,1.0,0.1,1.0\n"
    (tmp_path / "metrics.csv").write_text(rows)
    torch.save({"model": {}, "model_options": {}, "iteration": 60}, tmp_path / "best.pt")
    (tmp_path / "summary.json").write_text(json.dumps({**result, "status": "running", "iteration": 60}))
    skipped = run(cfg, tmp_path)
    assert (skipped["status"], skipped["iteration"]) == ("completed", 40)
    assert (tmp_path / "metrics.csv").read_text() == first_rows
    assert torch.load(tmp_path / "best.pt", weights_only=True)["iteration"] == best_iteration
    assert summary(tmp_path)["iteration"] == 40


def test_a_checkpoint_that_does_not_fit_the_model_is_moved_aside_and_the_job_restarts(cfg, tmp_path):
    run({**cfg, "max_iter": 20}, tmp_path)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    state["model"] = {k: torch.zeros(3) for k in state["model"]}
    del state["status"]
    torch.save(state, tmp_path / "checkpoint.pt")
    result = run(cfg, tmp_path)
    assert result["status"] == "completed" and result["resumed_from"] is None
    assert len(list(tmp_path.glob("checkpoint.pt.corrupt-*"))) == 1


@pytest.mark.parametrize("change", [{"final": None}, {"iteration": -1}, {"iteration": 10**9}, {"best": []}])
def test_summaries_with_wrong_values_are_rebuilt(cfg, tmp_path, change):
    first = run(cfg, tmp_path)
    (tmp_path / "summary.json").write_text(json.dumps({**first, **change}))
    run(cfg, tmp_path)
    assert (summary(tmp_path)["iteration"], summary(tmp_path)["final"]) == (40, first["final"])


def test_a_deleted_record_and_gradients_file_of_a_finished_run_are_rebuilt(tmp_path):
    import shutil

    import yaml

    cfg = compose_config([*TINY, "max_iter=40", "eval_every=20", "log_gradients=true"])
    run(cfg, tmp_path)
    gradients = (tmp_path / "gradients.csv").read_bytes()
    (tmp_path / "gradients.csv").unlink()
    shutil.rmtree(tmp_path / ".hydra")
    run(cfg, tmp_path)
    assert (tmp_path / "gradients.csv").read_bytes() == gradients
    assert yaml.safe_load((tmp_path / ".hydra" / "config.yaml").read_text())["lr"] == cfg["lr"]


def test_the_lock_never_follows_a_symbolic_link(cfg, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "run.lock").symlink_to(victim)
    with pytest.raises(RunDirError, match="symbolic link"):
        run(cfg, tmp_path / "run")
    assert victim.read_text() == "precious"


def test_a_dangling_symlink_as_output_dir_gives_one_line(tmp_path):
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    proc = train_cli(*TINY, "max_iter=20", f"hydra.run.dir={tmp_path / 'link'}", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "dangling symbolic link" in proc.stderr


def test_a_refused_sweep_changes_nothing_and_names_every_job(tmp_path):
    args = [*TINY, "max_iter=20", "eval_every=10", f"hydra.sweep.dir={tmp_path}", "-m", "seed=0,1"]
    train_cli(*args)
    before = snapshot(tmp_path)
    proc = train_cli(*args, "lr=0.3", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    for job in "01":
        line = f"job {job} (seed={job}): Refused: {tmp_path / job} holds a run of another config: lr changed"
        assert line in proc.stderr
    assert proc.stderr.startswith("Refused: 2 invalid job(s); no job was started")
    assert snapshot(tmp_path) == before  # multirun.yaml included
