"""Training that tells time: ``--seconds`` is the run's wall time end to end (setup, training,
final evaluation, saving) within 10% or 3 s, whichever is larger; the progress shows the
elapsed time and the time left; ``--resume`` gets a budget of its own; an ``--out`` that holds
a run is refused without ``--force`` or ``--resume``.

Short budgets on the real tasks (recall and weather build in well under a second; textgen's
final evaluation of 209,000 characters is what used to overrun)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgernn.train.clock import Budget, clock
from edgernn.train.tasks import build_task, recipe
from edgernn.train.trainer import TrainingError, fit

TICK = 0.02  # /proc's start time and uptime: 10 ms ticks each


def within(wall: float, budget: float) -> bool:
    return abs(wall - budget) <= max(0.1 * budget, 3.0)


def needs_a_quiet_machine() -> None:
    """Wall-time budgets are met on a machine that gives the run its cores; on one whose load is
    several times its core count, a single update or evaluation window can take tens of seconds
    (measured here: 26 s for one update that takes 0.1 s unloaded), so the check is skipped, saying why."""
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load > 2 * cores and not os.environ.get("EDGERNN_TIME_TESTS"):
        pytest.skip(f"load average {load:.1f} on {cores} cores: too busy to check wall-time budgets")


def quiet(_: str) -> None:
    pass


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """One torch thread, as ``make models`` trains: two threads on a shared, busy machine wait on
    each other (an evaluation window measured 29 s with two, 0.9 s with one)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # its first use imports torch._dynamo (seconds)
    yield
    torch.set_num_threads(before)


def test_a_time_budget_counts_from_the_runs_start_and_ends_on_time(tmp_path: Path) -> None:
    needs_a_quiet_machine()
    started = time.perf_counter()
    cfg = recipe("recall", hidden_size=32, max_steps=0, max_seconds=15.0)
    time.sleep(1.5)  # setup before fit (data, imports) counts against the budget
    res = fit(build_task(cfg), cfg, out=tmp_path / "run", log=quiet, started=started)
    wall = time.perf_counter() - started
    assert within(wall, 15.0), wall
    assert res.steps > 1 and (tmp_path / "run" / "model.safetensors").is_file()


def test_textgens_final_evaluation_is_budgeted(tmp_path: Path) -> None:
    """The evaluation used to run whole after the budget (14-70 s at hidden 768); now its time is
    measured before training, kept out of the training time, and capped at a quarter of the budget."""
    needs_a_quiet_machine()
    cfg = recipe("textgen", hidden_size=384, batch_size=16, max_seconds=15.0, precision="fp32")
    task = build_task(cfg)
    started = time.perf_counter()
    res = fit(task, cfg, out=tmp_path / "run", log=quiet, started=started)
    wall = time.perf_counter() - started
    assert within(wall, 15.0), wall
    assert 0 < res.metrics["valid_chars"] <= 209_092  # how much of the validation text it scored


def test_resume_gets_a_budget_of_its_own(tmp_path: Path) -> None:
    needs_a_quiet_machine()
    cfg = recipe("weather", hidden_size=16, max_steps=0, max_seconds=8.0)
    first = fit(build_task(cfg), cfg, out=tmp_path, log=quiet)
    started = time.perf_counter()
    second = fit(build_task(cfg), cfg, out=tmp_path, resume=tmp_path, log=quiet, started=started)
    wall = time.perf_counter() - started
    # the earlier run's 8 s do not count: this run trains for its own budget, from where it was
    assert within(wall, 8.0) and second.steps > first.steps + 1, (wall, first.steps, second.steps)


def test_an_out_that_holds_a_run_is_refused_without_force_or_resume(tmp_path: Path) -> None:
    cfg = recipe("recall", hidden_size=8, delay=2, max_steps=2)
    fit(build_task(cfg), cfg, out=tmp_path, log=quiet)
    before = (tmp_path / "metrics.jsonl").read_text()
    with pytest.raises(TrainingError, match=r"already holds files .*--force.*--resume"):
        fit(build_task(cfg), cfg, out=tmp_path, log=quiet)
    assert (tmp_path / "metrics.jsonl").read_text() == before  # nothing was touched
    fit(build_task(cfg), cfg, out=tmp_path, log=quiet, overwrite=True)
    assert (tmp_path / "metrics.jsonl").read_text().count('"step": 1,') == 1  # the old rows are gone
    (tmp_path / "notes.txt").write_text("mine")
    fit(build_task(cfg), cfg, out=tmp_path, log=quiet, overwrite=True)
    assert (tmp_path / "notes.txt").read_text() == "mine"  # --force replaces the run's files only


def test_cli_train_tells_time_and_refuses_an_existing_out(tmp_path: Path) -> None:
    out = tmp_path / "w"
    cmd = [sys.executable, "-m", "edgernn", "train", "weather", "--hidden", "16", "--steps", "0", "--threads", "1"]
    t = time.perf_counter()
    proc = subprocess.run([*cmd, "--seconds", "12", "--out", str(out)], capture_output=True, text=True, timeout=120)
    wall = time.perf_counter() - t
    assert proc.returncode == 0, proc.stderr
    quiet_machine = os.getloadavg()[0] <= 2 * (os.cpu_count() or 1)
    assert within(wall, 12.0) or not quiet_machine, wall  # the process's wall time: imports and data included
    assert "elapsed" in proc.stderr and "left" in proc.stderr  # the progress line: elapsed and ETA
    assert "final evaluation" in proc.stderr and re.search(r"done: \d+:\d\d wall time of a 0:12 budget", proc.stderr)
    again = subprocess.run([*cmd, "--seconds", "2", "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert again.returncode == 1 and "TrainingError" in again.stderr and "--force" in again.stderr
    assert "Traceback" not in again.stderr


def test_budget_and_clock_arithmetic() -> None:
    b = Budget(seconds=100.0, started=0.0, spent=50.0)
    assert b.plan(eval_s=10.0, save_s=2.0) == pytest.approx(11.0)  # measured times, with a 10% margin
    assert b.reserve == pytest.approx(13.2)
    # an evaluation that can stop at its deadline gets at most a quarter of the budget
    assert b.plan(eval_s=60.0, save_s=2.0, partial=True) == 25.0 and b.reserve == pytest.approx(27.2)
    b.train_started = 10.0  # setup took 10 s; training may run until 100 - 27.2
    assert b.training_over(72.7) is False and b.training_over(72.8) is True
    assert b.training_over(70.0, next_step=3.0) is True  # the next update would eat into the reserve
    assert b.fraction(10.0) == pytest.approx(50 / (50 + 62.8))  # the schedule continues where the run stopped
    assert b.fraction(72.8) == pytest.approx(1.0)
    assert clock(59.6) == "1:00" and clock(3725) == "1:02:05"


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="process start read from /proc (Linux only)")
def test_process_started_is_the_interpreters_start_not_the_first_call() -> None:
    """A fresh interpreter that waits 0.5 s before its first call: the age it reports includes the
    wait (it counts from the process's start, not the call) and is no longer than the parent saw
    the child live (it is not an older moment). Holds however long the suite has run."""
    code = ("import time; time.sleep(0.5); from edgernn.train.clock import process_started; "
            "print(time.perf_counter() - process_started())")  # fmt: skip
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    wall = time.perf_counter() - t
    assert proc.returncode == 0, proc.stderr
    age = float(proc.stdout)
    assert 0.5 - TICK <= age <= wall + TICK, (age, wall)  # /proc counts in clock ticks of 10 ms


def burn(cpu_seconds: float) -> None:
    """Spend ``cpu_seconds`` of this process's CPU time."""
    end = time.process_time() + cpu_seconds
    while time.process_time() < end:
        pass


def test_a_cpu_budget_counts_cpu_time_not_the_wall_clock() -> None:
    b = Budget(seconds=0.4, started=time.perf_counter(), cpu=True)
    assert b.plan(eval_s=30.0, save_s=5.0, partial=True) == 0.0 and b.reserve == 0.0  # final stages outside it
    time.sleep(0.6)  # wall time passes, no CPU time: a wall budget would be over here
    assert not b.training_over(b.now())
    burn(0.5)
    assert b.training_over(b.now())
    assert b.eval_deadline(0.0) is None  # the final evaluation runs whole
    assert b.describe() == "0:00 CPU-time training budget"


def test_a_cpu_budget_trains_for_its_cpu_seconds_and_scores_all_the_text(tmp_path: Path) -> None:
    """Setup's CPU time does not count (burnt before fit), the training's does (every thread), and
    the final evaluation is outside the budget: every validation character is scored."""
    from edgernn.train.data_text import char_corpus, load_kjv_text
    from edgernn.train.textgen import evaluate_bpc

    started = time.perf_counter()
    burn(1.0)
    cfg = recipe("textgen", hidden_size=32, batch_size=4, seq_len=32, eval_chars=3_000, precision="fp32",
                 clock="cpu", max_seconds=3.0, max_steps=0)  # fmt: skip
    res = fit(build_task(cfg), cfg, out=tmp_path / "run", log=quiet, started=started)
    cpu = res.metrics["train_cpu_seconds"]
    assert 3.0 <= cpu <= 3.6 and res.steps > 10, (cpu, res.steps)  # stopped at the budget, within an update
    _, whole = evaluate_bpc(res.model, char_corpus(load_kjv_text()).valid[:3_000])
    assert res.metrics["valid_chars"] == whole
    assert '"clock": "cpu"' in (tmp_path / "run" / "config.json").read_text()


def test_cli_cpu_seconds_sets_a_cpu_budget_and_excludes_seconds(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "edgernn", "train", "recall", "--hidden", "16", "--threads", "1"]
    proc = subprocess.run([*cmd, "--cpu-seconds", "1.5", "--out", str(tmp_path / "r")], capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"done: \d+:\d\d wall time of a 0:02 CPU-time training budget", proc.stderr), proc.stderr
    both = subprocess.run([*cmd, "--cpu-seconds", "1", "--seconds", "1", "--out", str(tmp_path / "b")],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert both.returncode == 2 and "not allowed with argument" in both.stderr and "Traceback" not in both.stderr


def test_an_unknown_budget_clock_is_a_training_error() -> None:
    cfg = recipe("recall", hidden_size=8, delay=2, max_steps=2, clock="gpu")
    with pytest.raises(TrainingError, match=r"clock 'gpu': expected 'wall' or 'cpu'"):
        fit(build_task(cfg), cfg, log=quiet)
