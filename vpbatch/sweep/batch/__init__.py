"""Provider batch APIs (OpenAI Batch, Anthropic Message Batches) as a per-model mode.

Takes a model's pending jobs, gives log lines. Half the price for overnight sweeps: a model with
`mode = "batch"` submits its pending jobs as provider batches, records each batch id in
`batches.jsonl` before waiting, and a resume polls the recorded batches instead of submitting
(and paying for) them again.
"""

from __future__ import annotations

from vpbatch.providers.batchapi import BatchAPI, BatchCallError, BatchCalls, BatchState, LineResult
from vpbatch.providers.contract import Provider
from vpbatch.providers.http import HttpProvider
from vpbatch.providers.spec import spec_of
from vpbatch.sweep.batch.journal import JOURNAL_NAME, BatchEntry, BatchJournal
from vpbatch.sweep.batch.runner import BatchOptions, BatchRunner
from vpbatch.transport.retry import RetryPolicy

__all__ = [
    "BatchAPI",
    "BatchCallError",
    "BatchCalls",
    "BatchEntry",
    "BatchJournal",
    "BatchOptions",
    "BatchRunner",
    "BatchState",
    "JOURNAL_NAME",
    "LineResult",
    "batch_api_for",
]

def batch_api_for(provider: Provider, policy: RetryPolicy) -> BatchAPI | None:
    """The batch API of this model's provider (over its endpoint), or None when it has none."""
    api = spec_of(provider.cfg).batch
    if api is None or not isinstance(provider, HttpProvider):
        return None
    return api(provider, policy)
