"""Provider batch APIs (OpenAI Batch, Anthropic Message Batches) as a per-model mode.

Half the price for overnight sweeps: a model with `mode = "batch"` submits its pending jobs as
provider batches, records each batch id in `batches.jsonl` before waiting, and a resume polls
the recorded batches instead of submitting (and paying for) them again.
"""

from vpbatch.batch.api import BatchAPI, BatchCallError, BatchState, LineResult, batch_api_for
from vpbatch.batch.journal import JOURNAL_NAME, BatchEntry, BatchJournal
from vpbatch.batch.runner import BatchOptions, BatchRunner

__all__ = [
    "BatchAPI",
    "BatchCallError",
    "BatchEntry",
    "BatchJournal",
    "BatchOptions",
    "BatchRunner",
    "BatchState",
    "JOURNAL_NAME",
    "LineResult",
    "batch_api_for",
]
