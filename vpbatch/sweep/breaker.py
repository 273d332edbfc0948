"""The per-model circuit breaker: stop a model whose failures are systematic.

A `Breaker` watches one model's outcomes: each job's log line, and each attempt that got no
answer. It trips when `stop_after` jobs in a row were logged as failed (so also when the model's
first `stop_after` jobs all failed with one cause), or when `stop_after` attempts in a row timed
out or found nothing to connect to, with no answer between. A server that accepts connections
but never answers, or a base_url where nothing listens, fails no job for a long time (every job
is still retrying with backoff), hence the second count. Refused connections count only until
the model's first answer: after that they are a server restarting, which a job's retries ride
out, not a wrong base_url. An answer neither parser can rate (`Record.unrated`) counts in the
first streak as a failed job does: a model whose answers measure nothing is stopped as early
as one whose requests fail, and the message names what it did and the fix (`sweep.unrated`).
The breaker only says why; the runner stops issuing. It never retries: `retry.retrying` is
the one loop.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from vpbatch.config.schema import ModelConfig, RunConfig
from vpbatch.log.records import OK, Record
from vpbatch.sweep.unrated import UNRATED_PREFIX, advice_for, describe
from vpbatch.transport.records import ProviderError

__all__ = ["BreakerPolicy", "Breaker", "advice", "cause_of"]

# What varies between two failures of one cause: the attempts it took, request ids, times.
_GAVE_UP = re.compile(r" \(gave up after \d+ (?:attempts|batch rounds)\)$")
_VOLATILE = re.compile(r"\b(?=[0-9a-zA-Z_-]*\d)[0-9a-zA-Z_-]{12,}\b")


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """When a model is stopped: after `stop_after` failures in a row (0: never)."""

    stop_after: int  # [run] stop_after (default 20), or the model's own

    @classmethod
    def for_model(cls, run: RunConfig, m: ModelConfig) -> BreakerPolicy:
        """The model's own `stop_after`, else the run's."""
        return cls(m.stop_after if m.stop_after is not None else run.stop_after)


def cause_of(error: str) -> str:
    """A failure's cause, for telling "the same error every time" from several errors."""
    return _VOLATILE.sub("…", _GAVE_UP.sub("", error))


class Breaker:
    """One model's run of failures since its last answer; `tripped` says why it stopped."""

    __slots__ = ("policy", "failed", "silent", "tripped", "answered", "examples")

    def __init__(self, policy: BreakerPolicy) -> None:
        self.policy = policy
        # Causes of the jobs failed (or answered unrated) since the last rated answer.
        self.failed: Counter[str] = Counter()
        self.examples: dict[str, Record] = {}  # per unrated cause, its first answer
        self.silent: Counter[str] = Counter()  # causes of the attempts timed out since then
        self.tripped: str | None = None
        self.answered = False  # has the model answered once in this process?

    def logged(self, record: Record) -> str | None:
        """A job's line was written; returns why to stop the model now, else None."""
        if record.status == OK:
            self.answered = True
            self.silent.clear()
            if record.unrated is None:
                self.failed.clear()
                self.examples.clear()
                return None
            cause = UNRATED_PREFIX + record.unrated
            self.examples.setdefault(cause, record)
            self.failed[cause] += 1
            return self._check(self.failed, "jobs in a row failed", None)
        status = (record.extra or {}).get("http_status")
        self.failed[cause_of(record.error or "failed")] += 1
        return self._check(self.failed, "jobs in a row failed", status)

    def no_answer(self, exc: ProviderError) -> str | None:
        """An attempt timed out or could not connect; returns why to stop, else None."""
        if exc.unreachable and self.answered:
            return None  # the server answered before: a restart, which retries ride out
        self.silent[cause_of(exc.message)] += 1
        return self._check(self.silent, "requests in a row got no answer", None)

    def _check(self, streak: Counter[str], what: str, status: int | None) -> str | None:
        n = sum(streak.values())
        limit = self.policy.stop_after
        if self.tripped is not None or limit <= 0 or n < limit:
            return None
        cause, k = streak.most_common(1)[0]
        if cause in self.examples:
            self.tripped = self._unrated(streak, cause, k, n)
            return self.tripped
        said = f"all with: {cause}" if k == n else f"{k} of them with: {cause}"
        fix = advice(cause, status)
        self.tripped = f"{n} {what} ({said}); nothing more of its grid was sent" + (
            f". {fix}" if fix else "")
        return self.tripped

    def _unrated(self, streak: Counter[str], cause: str, k: int, n: int) -> str:
        """The stop message of a streak whose commonest cause is an unrated answer."""
        unrated = sum(c for name, c in streak.items() if name in self.examples)
        what = describe(cause.removeprefix(UNRATED_PREFIX))
        if unrated == n:
            head = f"{n} answers in a row could not be rated"
        else:
            head = f"{n} jobs in a row failed or came back unrated"
        said = f"all {what}" if k == n else f"{k} of them {what}"
        return (f"{head} ({said}): {advice_for(self.examples[cause])}; nothing more of its "
                "grid was sent")


def advice(cause: str, status: int | None) -> str:
    """What to change, from the failure's cause; "" when the cause says it already."""
    if "timed out" in cause:
        return ("The server accepts connections but does not answer: check that it is up and "
                "serving this model, or raise timeout_read if its answers are this slow")
    if "not a chat completion" in cause or "max_response_bytes" in cause:
        return ""  # those messages name the fix (base_url; max_tokens, max_response_bytes)
    if status in (400, 422):
        return ("The server refuses the request itself: change what it names in this model's "
                "config (temperature, max_tokens, reasoning, extra_body)")
    if status == 404:
        return "Check base_url and model: the server has no such route or model"
    if status == 429:
        if "quota" in cause:
            return "Add credit to the account, or use another key"
        return "The server keeps refusing for rate: lower rpm, tpm or concurrency"
    if status is not None and status >= 500:
        return "The server fails: check its logs, or try again later"
    if "DNSError" in cause or "Name or service not known" in cause:
        return ("The host name does not resolve: check base_url's host, and this machine's "
                "network and DNS")
    if "Connect" in cause or "Connection" in cause:
        return "Nothing answers at base_url: start the server, or fix base_url"
    return "Fix the cause above"
