"""The clock of one training run: its wall-time budget end to end, and the progress line.

``--seconds`` is the wall time of the whole run: setup (imports, data, baselines), training,
the final evaluation and saving. The budget starts when the command starts (``started``) and
keeps a reserve for what comes after the last update, measured before training starts: the
final evaluation (timed on a slice of it, ``Task.eval_probe``, or whole; an evaluation that can
stop at a deadline, as textgen's does, gets at most ``EVAL_SHARE`` of the budget and scores
what fits) and the save (timed by writing the run's files once). Training stops when the
next update, at the pace of the last one, would eat into the reserve. On ``--resume`` the
budget counts this run only; the learning-rate schedule continues where the earlier run left
it, stretched over the time now given.

``--cpu-seconds`` (``TrainConfig.clock = "cpu"``) counts instead the CPU time this process spends
training, every thread (``time.process_time``), from the first update to the last: setup, the
final evaluation and the save are outside it, so the evaluation always scores all of its text.
On a shared machine, runs at different moments or side by side get the same work for the same
CPU budget where a wall budget gives each whatever the load leaves; with n torch threads, the
wall budget of n idle cores for T seconds is a CPU budget of n x T (spin-waiting threads count
too: one thread per run measures best).

The progress line shows the elapsed time and the time left (ETA) while training, then one
line per final stage (evaluation, saving) with its estimate and the time it took.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgernn.train.distributed import DistInfo
    from edgernn.train.trainer import Task

EVAL_SHARE = 0.25  # at most this share of a time budget goes to the final evaluation
MARGIN = 1.1  # measured times, taken with this margin (the machine's load changes)


def process_started() -> float:
    """When this process started, as a ``time.perf_counter()`` value (Linux: from /proc, so the
    interpreter's start and the imports count; elsewhere: the first call)."""
    global _STARTED
    if _STARTED is None:
        _STARTED = time.perf_counter()
        try:
            ticks = int(open("/proc/self/stat").read().rsplit(")", 1)[1].split()[19])
            uptime = float(open("/proc/uptime").read().split()[0])
            age = uptime - ticks / os.sysconf("SC_CLK_TCK")
            if 0 <= age < 3600:
                _STARTED -= age
        except (OSError, ValueError, IndexError):
            pass
    return _STARTED


_STARTED: float | None = None


def clock(seconds: float) -> str:
    """``seconds`` as m:ss (h:mm:ss past an hour)."""
    s = max(int(round(seconds)), 0)
    h, rest = divmod(s, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


@dataclass
class Budget:
    """A run's time budget (``seconds`` 0: none) from ``started`` (a ``time.perf_counter()`` value).

    ``spent`` is the training time of the run being resumed (it does not count against this
    run's budget; it places the learning-rate schedule). ``reserve`` is kept for the final
    evaluation and the save.
    """

    seconds: float
    started: float
    spent: float = 0.0
    reserve: float = 0.0
    train_started: float = 0.0  # when the first update of this run began (on the budget's clock)
    cpu: bool = False  # ``seconds`` of this process's CPU time spent training (see the module's doc)
    wall_started: float = 0.0  # when the first update began, wall clock (the ETA of a CPU budget)

    @property
    def timed(self) -> bool:
        return self.seconds > 0

    def now(self) -> float:
        """The budget's clock: process CPU seconds for a CPU budget, else ``time.perf_counter()``."""
        return time.process_time() if self.cpu else time.perf_counter()

    @property
    def deadline(self) -> float:
        return (self.train_started if self.cpu else self.started) + self.seconds

    def eval_deadline(self, eval_s: float) -> float | None:
        """The ``time.perf_counter()`` value a partial final evaluation stops at (None: it runs whole)."""
        return self.deadline - (self.reserve - eval_s) if self.timed and not self.cpu else None

    def describe(self) -> str:
        return f"{clock(self.seconds)} {'CPU-time training budget' if self.cpu else 'budget'}"

    def plan(self, eval_s: float, save_s: float, partial: bool = False) -> float:
        """Keep the reserve for the final stages (measured seconds, taken with ``MARGIN``); the
        seconds the final evaluation may take (``partial``: it can stop early, so it is capped).
        A CPU budget keeps none: its final stages are outside it."""
        self.wall_started = time.perf_counter()
        if self.cpu:
            self.reserve, self.train_started = 0.0, self.now()
            return 0.0
        eval_s *= MARGIN
        eval_s = min(eval_s, EVAL_SHARE * self.seconds) if self.timed and partial else eval_s
        self.reserve = eval_s + MARGIN * save_s
        self.train_started = time.perf_counter()
        return eval_s

    def training_over(self, now: float, next_step: float = 0.0) -> bool:
        """Whether the next update (taking ``next_step`` seconds) would run into the reserve."""
        return self.timed and now + next_step >= self.deadline - self.reserve

    def fraction(self, now: float) -> float:
        """Share of the training time spent (the schedule's clock): earlier runs' time included."""
        window = self.deadline - self.reserve - self.train_started
        return (self.spent + now - self.train_started) / max(self.spent + window, 1e-9)

    def left(self, now: float) -> float:
        """Seconds to the deadline on the budget's clock (``now`` read from ``self.now()``)."""
        return self.deadline - now

    def wall_left(self, now: float) -> float:
        """Wall seconds to the deadline: a CPU budget's at the pace of CPU to wall time so far."""
        if not self.cpu:
            return self.left(now)
        ran, used = time.perf_counter() - self.wall_started, now - self.train_started
        return self.left(now) * (ran / used if used > 0 else 1.0)


class Progress:
    """One self-rewriting line on a terminal (a plain line every 10 s otherwise), then stage lines."""

    def __init__(self, name: str, enabled: bool, started: float) -> None:
        self.name, self.enabled = name, enabled
        self.tty = sys.stderr.isatty()
        self.started = started
        self.last = 0.0

    def update(self, frac: float, text: str, left: float | None, force: bool = False) -> None:
        """``frac`` of the training done; ``left`` the seconds to the end of the run (None: unknown)."""
        now = time.perf_counter()
        if not self.enabled or (not force and now - self.last < (0.2 if self.tty else 10.0)):
            return
        self.last = now
        filled = int(20 * min(frac, 1.0))
        eta = f", {clock(left)} left" if left is not None else ""
        line = (
            f"[{self.name}] |{'#' * filled}{'.' * (20 - filled)}| {100 * min(frac, 1.0):3.0f}% {text}  "
            f"{clock(now - self.started)} elapsed{eta}"
        )
        print(("\r\x1b[K" + line) if self.tty else line, end="" if self.tty else "\n", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.enabled and self.tty and self.last:
            print(file=sys.stderr)
        self.last = 0.0

    def stage(self, text: str) -> None:
        """One line for a final stage, with the run's elapsed time."""
        if self.enabled:
            self.close()
            print(f"[{self.name}] {clock(time.perf_counter() - self.started)} {text}", file=sys.stderr, flush=True)


def plan_budget(task: Task, model: Any, budget: Budget, info: DistInfo, save: Callable[[], bool]) -> float:
    """Measure the final evaluation and the save and reserve their time in a time budget (rank 0
    measures, every rank keeps its figure); the seconds the final evaluation may take."""
    if not budget.timed or budget.cpu:
        return budget.plan(0.0, 0.0)
    eval_s = save_s = 0.0
    if info.is_main:
        model.eval()
        eval_s = float(task.eval_probe(model)) if task.eval_probe is not None else _timed_evaluation(task, model)
        from edgernn.train.rundir import warm_plotting

        warm_plotting()  # an import of seconds, paid now rather than in the final save
        t = time.perf_counter()
        if save():  # the run directory's first checkpoint (step 0 or the resumed step): its cost, measured
            save_s = time.perf_counter() - t
        model.train()
    if info.active:
        from edgernn.train.distributed import all_mean

        eval_s, save_s = all_mean(eval_s, info) * info.world, all_mean(save_s, info) * info.world
    return budget.plan(eval_s, save_s, partial=task.eval_partial)


def _timed_evaluation(task: Task, model: Any) -> float:
    t = time.perf_counter()
    task.evaluate(model, None)
    return time.perf_counter() - t


def time_left(max_steps: int, budget: Budget, step: int, first: int, now: float) -> float | None:
    """Wall seconds to the end of the training: the budget's deadline, or the remaining updates at
    this run's pace (``now`` on the budget's clock)."""
    if budget.timed:
        return budget.wall_left(now)
    if max_steps and step > first:
        return (now - budget.train_started) / (step - first) * (max_steps - step)
    return None
