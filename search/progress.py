"""The search's console: one live rich progress bar on a terminal, one plain line per finished trial
otherwise (logs, CI), and a short table of the top trials and the baseline at the end."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from ganmix.models.metrics import BestSoFar, metric_info, test_counterpart
from ganmix.models.numbers import decimals, number
from ganmix.tracking.query import rank, tuned_baseline
from ganmix.tracking.query import TrialSummary


@dataclass(frozen=True)
class TrialRow:
    """One line of the final table."""

    rank: str
    name: str
    value: float | None
    lift: float | None
    test: float | None


def _elapsed(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}" if minutes < 60 else f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


class SearchProgress:
    """Counts trials and the best completed one; draws a bar (terminal) or prints lines (anything else)."""

    def __init__(self, total: int, metric: str, *, stream: IO[str] | None = None,
                 live: bool | None = None, quiet: bool = False) -> None:
        self.total, self.metric, self.quiet = total, metric, quiet
        self.stream = stream if stream is not None else sys.stdout
        self.live = (self.stream.isatty() if live is None else live) and not quiet
        self.started = time.monotonic()
        self.done = self.running = self.failed = self.stopped = 0
        self.best = BestSoFar(metric)  # over completed trials, keyed by (finish order, name)
        # (arm kind, "completed" | "stopped_early" | "failed") -> trials; told by search.scheduler.ArmTally
        self.arms: dict[tuple[str, str], int] = {}
        self.console = Console(file=self.stream, highlight=False, soft_wrap=True)
        self._bar: Progress | None = None
        self._task = None
        if self.live:
            self._bar = Progress(TextColumn("trials"), BarColumn(bar_width=16), MofNCompleteColumn(),
                                 TextColumn("{task.fields[counts]}"), TimeElapsedColumn(), TextColumn("ETA"),
                                 TimeRemainingColumn(), TextColumn("{task.fields[best]}"),
                                 console=self.console, transient=False)
            self._task = self._bar.add_task("search", total=total, counts=self._counts(), best=self._best())
            self._bar.start()

    def __getstate__(self) -> dict[str, object]:
        # Tune pickles its callbacks into the experiment state; a resumed search brings its own console.
        return {k: v for k, v in self.__dict__.items() if k not in ("stream", "console", "_bar", "_task")}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state, stream=sys.stdout, console=Console(file=sys.stdout), _bar=None, _task=None)

    # --- what the search callback tells it -----------------------------------------------------------
    def started_trial(self) -> None:
        self.running += 1
        self._refresh()

    def finished_trial(self, name: str, *, status: str, value: float | None) -> None:
        """status: "completed", "stopped early" or "failed"; `value` is the trial's last objective value."""
        self.running = max(0, self.running - 1)
        self._count(name, status, value)
        if self._bar is not None:
            self._refresh()
        elif not self.quiet:
            shown = f" {self.metric} {value:.4f}" if value is not None and math.isfinite(value) else ""
            print(f"[{_elapsed(time.monotonic() - self.started):>5}] trial {self.done}/{self.total} {status}: "
                  f"{name}{shown} | {self._best()}", file=self.stream, flush=True)

    def _count(self, name: str, status: str, value: float | None) -> None:
        """One more finished trial in the counters and the best so far (a live one or one before a resume)."""
        self.done += 1
        self.failed += status == "failed"
        self.stopped += status == "stopped early"
        if status == "completed" and value is not None and math.isfinite(value):
            self.best.update((self.done, name), value)

    def seed_finished(self, finished: Sequence[tuple[str, str, float | None]]) -> None:
        """A resumed search: the trials (name, status, value) that finished before its interruption count
        toward the counter and the best so far, as if this console had seen them."""
        for name, status, value in finished:
            self._count(name, status, value)
        if self._bar is not None:
            self._refresh()
        elif not self.quiet and finished:
            print(f"[{_elapsed(time.monotonic() - self.started):>5}] resumed: {self.done}/{self.total} trials "
                  f"finished before the interruption | {self._best()}", file=self.stream, flush=True)

    def arm_finished(self, arm: str, outcome: str) -> None:
        """One more trial of arm kind `arm` ended with `outcome` ("completed", "stopped_early", "failed")."""
        self.arms[arm, outcome] = self.arms.get((arm, outcome), 0) + 1
        self._refresh()

    def resume_arms(self, counts: dict[tuple[str, str], int]) -> None:
        """A resumed search's counts so far."""
        self.arms.update(counts)
        self._refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._refresh()
            self._bar.stop()
            self._bar = None
        if self.arms and not self.quiet:
            self.console.print(f"trials per arm: {arms_line(self.arms)}")

    # --- rendering ----------------------------------------------------------------------------------
    def _counts(self) -> str:
        arms = f" ({arms_line(self.arms, short=True)})" if self.arms else ""
        return f"done, {self.running} running, {self.failed} failed, {self.stopped} stopped early{arms}"

    def _best(self) -> str:
        best = self.best
        return f"best {self.metric} {best.value:.4f} {best.key[1]}" if best.key is not None else "no completed trial yet"

    def _refresh(self) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=self.done, counts=self._counts(), best=self._best())

    def summary(self, rows: Sequence[TrialRow], baseline: TrialRow | None, *, test_metric: str | None) -> None:
        """The top trials and the tuned baseline, as a small table."""
        if self.quiet or not rows:
            return
        table = Table(title=None, box=None, pad_edge=False, show_edge=False, header_style="bold")
        for column in ("rank", "trial", self.metric, "vs baseline", *([test_metric] if test_metric else [])):
            table.add_column(column, justify="left" if column == "trial" else "right")
        shown = list(rows) + ([baseline] if baseline is not None and baseline not in rows else [])
        # Per column, the decimals that keep its rows apart (models/numbers.py: one rule everywhere).
        value, lift, test = (decimals(*(getattr(r, key) for r in shown)) for key in ("value", "lift", "test"))
        for row in shown:
            table.add_row(row.rank, row.name, number(row.value, value), number(row.lift, lift, signed=True),
                          *([number(row.test, test)] if test_metric else []))
        self.console.print(table)


ARM_OUTCOMES = ("completed", "stopped_early", "failed")


def arms_line(counts: Mapping[tuple[str, str], int], *, short: bool = False) -> str:
    """Per arm kind, trials that ran to the end: "real-only: 2 of 5 ran to the end (3 stopped early);
    generator: 3 of 11 ran to the end (8 stopped early)"; `short`: "real-only 2/5 to the end, generator 3/11"."""
    parts = []
    for arm in sorted({arm for arm, _ in counts}, key=lambda a: (a != "real-only", a)):
        done, stopped, failed = (counts.get((arm, outcome), 0) for outcome in ARM_OUTCOMES)
        total = done + stopped + failed
        if short:
            parts.append(f"{arm} {done}/{total}")
            continue
        extra = ", ".join(f"{n} {label}" for n, label in ((stopped, "stopped early"), (failed, "failed")) if n)
        parts.append(f"{arm}: {done} of {total} ran to the end" + (f" ({extra})" if extra else ""))
    return (", ".join(parts) + " to the end") if short else "; ".join(parts)


def quiet_libraries(verbose: bool) -> None:
    """Silence Ray's, Optuna's and MLflow's console chatter (config table, TensorBoard hint, INFO lines,
    download bars, metric-fetch warnings) unless --verbose; errors still get through."""
    import logging
    import os
    import warnings

    from ganmix.search.ray_start import quiet_ray

    quiet_ray(verbose)
    if verbose:
        return
    # Ray Tune's new output engine prints its experiment table and TensorBoard hint even at verbose=0;
    # the classic reporter at verbose=0 prints nothing.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for name, level in (("mlflow", logging.WARNING), ("alembic", logging.WARNING), ("optuna", logging.WARNING)):
        logging.getLogger(name).setLevel(level)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", module="optuna")  # Optuna's UserWarnings are a library's, not the user's


def result_rows(summaries: Sequence[TrialSummary], metric: str, *,
                top: int = 5) -> tuple[list[TrialRow], TrialRow | None]:
    """The final table's rows from a search's trial summaries: the top trials and the tuned baseline."""
    ranking = rank(summaries, metric)
    base = tuned_baseline(summaries, metric)
    test = test_counterpart(metric)

    def row(s: TrialSummary) -> TrialRow:
        value = s.metrics[metric]
        delta = metric_info(metric).lift(value, base.metrics[metric]) if base is not None else None
        return TrialRow(str(ranking.index(s) + 1), s.name, value, delta, s.metrics.get(test) if test else None)

    return [row(s) for s in ranking[:top]], (row(base) if base is not None else None)
