"""Live progress per model: done/total, rate, ETA, retries, failures, tokens.

On a terminal the lines are redrawn in place; otherwise (a log file, CI) a plain line per
model is printed every `interval` seconds, so an overnight log stays readable.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import TextIO

import anyio

from vpbatch.log.records import Record

__all__ = ["ModelProgress", "Progress", "fit_name", "format_line", "format_duration", "name_width",
           "rate_limit_lines"]


class ModelProgress:
    """One model's counters, updated by its pipeline on the hot path (hence plain slots)."""

    __slots__ = (
        "name", "total", "skipped", "failed_before", "ok", "failed", "gave_up", "retries",
        "tokens", "sent", "in_flight", "started", "stopped", "reasons", "unrated",
        "unrated_before", "answered_before", "unrated_reasons", "unrated_examples", "limited",
        "unsaid", "learned_rpm", "quota_wait", "adapted", "_clock",
    )

    def __init__(self, name: str, total: int, clock: Callable[[], float] = time.monotonic):
        self.name = name
        self.total = total  # jobs in this model's grid (shard)
        self.skipped = 0  # already in the log when the run started
        self.failed_before = 0  # of those, logged as failed (fail_on_error counts them)
        self.ok = 0
        self.failed = 0  # logged as failed this run
        self.gave_up = 0  # of those, transient failures that ran out of attempts or time
        self.retries = 0  # attempts beyond the first
        self.tokens = 0  # prompt + completion tokens reported by the provider
        self.sent = 0  # requests sent, retries included
        self.in_flight = 0
        self.started = clock()
        self.stopped: str | None = None  # why the model stopped early (breaker, auth, config)
        self.reasons: Counter[str] = Counter()  # failure reasons, for the final summary
        self.unrated = 0  # of `ok`, answers neither parser could rate (Record.unrated)
        self.answered_before = 0  # of the skipped, answered by an earlier run
        self.unrated_before = 0  # of those, unrated (fail_on_error and min_rated count them)
        self.unrated_reasons: Counter[str] = Counter()  # unrated causes, this run
        self.unrated_examples: dict[str, Record] = {}  # per cause, its first answer this run
        self.limited = 0  # 429 (or 529) answers, retried
        self.unsaid = 0  # of those, without Retry-After or a reset header
        self.learned_rpm: float | None = None  # the rate AIMD cut to, when it cut one
        self.quota_wait = 0.0  # seconds waited on the server's x-ratelimit-remaining-*
        self.adapted: tuple[str, ...] = ()  # the request form learnt from the server (adapt)
        self._clock = clock

    @property
    def done(self) -> int:
        return self.skipped + self.ok + self.failed

    @property
    def finished(self) -> bool:
        return self.done >= self.total

    def rate(self) -> float:
        """Jobs finished per second by this run (skipped ones cost nothing, so not counted)."""
        elapsed = self._clock() - self.started
        return (self.ok + self.failed) / elapsed if elapsed > 0 else 0.0

    def eta(self) -> float | None:
        """Seconds left at the current rate, None when there is no rate yet."""
        r = self.rate()
        left = self.total - self.done
        if left <= 0:
            return 0.0
        return left / r if r > 0 else None

    def note_failure(self, reason: str, *, transient: bool = False) -> None:
        self.failed += 1
        self.gave_up += transient
        # The first 80 characters: enough to group "HTTP 400: ..." without one line per job.
        self.reasons[reason[:80]] += 1

    def note_unrated(self, record: Record) -> None:
        """An answer came back that neither parser can rate (it is already counted in `ok`)."""
        cause = record.unrated or "unparseable"
        self.unrated += 1
        self.unrated_reasons[cause] += 1
        self.unrated_examples.setdefault(cause, record)

    def rated(self) -> int:
        """Jobs of the grid with a rated answer, this run's and earlier runs'."""
        return self.ok - self.unrated + self.answered_before - self.unrated_before


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "--"
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def fit_name(name: str, width: int) -> str:
    """`name` padded to `width`, or cut in the middle ("gpt-4o-…-08-06"): the dates and sizes
    that tell a model's versions apart sit at the end of its name."""
    if len(name) <= width:
        return f"{name:<{width}}"
    head = (width - 1) // 2
    return name[:head] + "…" + name[len(name) - (width - 1 - head):]


def _status(p: ModelProgress) -> str:
    """Everything after the name, the figures that matter first (a narrow terminal cuts the end)."""
    pct = 100.0 * p.done / p.total if p.total else 100.0
    state = f"STOPPED: {p.stopped}" if p.stopped else f"eta {format_duration(p.eta())}"
    learned = f"  rpm {p.learned_rpm:.0f} (learned)" if p.learned_rpm is not None else ""
    return (
        f"{p.done:>7}/{p.total:<7} {pct:5.1f}%  {p.rate():7.1f}/s  {state}  "
        f"retries {p.retries}  failed {p.failed}  "
        + (f"unrated {p.unrated}  " if p.unrated else "") + f"tokens {p.tokens}{learned}"
    )


_CORE = 44  # of _status: counts, percentage, rate and eta, kept whole when names are cut


def format_line(p: ModelProgress, width: int = 24) -> str:
    """One model's status line, its name in a column `width` wide."""
    return f"{fit_name(p.name, width)} {_status(p)}"


def name_width(names: list[str], columns: int | None = None) -> int:
    """The name column: the longest name, narrowed (never below 12) to leave a line of
    `columns` room for the counts, percentage, rate and eta."""
    longest = max((len(n) for n in names), default=4)
    if columns is None:
        return longest
    return max(12, min(longest, columns - 1 - 1 - _CORE))


def rate_limit_lines(p: ModelProgress) -> list[str]:
    """What the server's limits did to a model: 429s, the rate learned, waits on its word."""
    out = []
    if p.limited:
        plain = f", {p.unsaid} without Retry-After" if p.unsaid else ""
        out.append(f"  rate limited: {p.limited} x 429{plain}; every one retried")
    if p.learned_rpm is not None:
        out.append(f"  request rate learned from the 429s: {p.learned_rpm:.0f} rpm at the end "
                   f"(set rpm = {p.learned_rpm:.0f} to start there next time)")
    if p.quota_wait >= 1.0:
        out.append(f"  paced by the server's x-ratelimit-remaining headers: waited "
                   f"{format_duration(p.quota_wait)} in all")
    return out


class Progress:
    """Draws every model's line: in place on a TTY, else plainly every `interval` seconds."""

    __slots__ = ("models", "stream", "tty", "interval", "_drawn")

    def __init__(
        self,
        models: list[ModelProgress],
        stream: TextIO | None = None,
        *,
        tty: bool | None = None,
        interval: float | None = None,
    ) -> None:
        self.models = models
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        # A terminal can take redraws often; a log file wants a line per model now and then.
        self.interval = interval if interval is not None else (0.5 if self.tty else 30.0)
        self._drawn = 0

    def render(self) -> list[str]:
        width = name_width([p.name for p in self.models])
        return [format_line(p, width) for p in self.models]

    def _frame(self) -> list[str]:
        """The lines that fit the terminal: a wrapped or scrolled line would break the
        cursor-up redraw, so lines are cut to the width and unfinished models come first."""
        size = shutil.get_terminal_size()
        room = max(2, size.lines - 2)
        models = sorted(self.models, key=lambda p: p.finished)  # stable: config order kept
        shown = models if len(models) <= room else models[: room - 1]
        width = name_width([p.name for p in shown], size.columns)
        lines = [format_line(p, width) for p in shown]
        if len(shown) < len(models):
            rest = models[len(shown):]
            done = sum(p.finished for p in rest)
            lines.append(f"... and {len(rest)} more models ({done} of them finished)")
        return [line[: size.columns - 1] for line in lines]

    def draw(self) -> None:
        lines = self._frame() if self.tty else self.render()
        if self.tty:
            # Move up over the previous frame and overwrite it, clearing each line's tail.
            up = f"\x1b[{self._drawn}F" if self._drawn else ""
            self.stream.write(up + "".join(f"{line}\x1b[K\n" for line in lines))
            self._drawn = len(lines)
        else:
            stamp = time.strftime("%H:%M:%S")
            self.stream.write("".join(f"[{stamp}] {line}\n" for line in lines))
        self.stream.flush()

    async def run(self) -> None:
        """Redraw until cancelled."""
        while True:
            await anyio.sleep(self.interval)
            self.draw()

    def summary(self) -> list[str]:
        """The closing lines: each model's totals, why it stopped, its commonest failures."""
        out = []
        for p in self.models:
            unrated = f", {p.unrated} of them unrated" if p.unrated else ""
            out.append(
                f"{p.name}: {p.done}/{p.total} done ({p.ok} answered{unrated}, {p.failed} "
                f"failed, {p.skipped} already in the log), {p.retries} retries, "
                f"{p.tokens} tokens" + (f", rated share {p.rated() / p.total:.1%}"
                                        if p.total and p.done >= p.total else "")
            )
            if p.stopped:
                out.append(f"  stopped: {p.stopped}")
            out.extend(rate_limit_lines(p))
            for reason, n in p.reasons.most_common(3):
                out.append(f"  {n} x {reason}")
            for cause, n in p.unrated_reasons.most_common():
                out.append(f"  {n} x unrated: {cause}")
            if p.gave_up:
                # A resume skips failed jobs; transient ones deserve another try when asked.
                out.append(f"  {p.gave_up} failed only for lack of retries; add --retry-failed "
                           "to a resume to send them again")
        return out
