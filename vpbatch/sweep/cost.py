"""What tokens cost: a model's prices per 1M tokens, at half through a provider batch API.

The one definition behind `plan` (an upper bound), `status` and the report's run health.
"""

from __future__ import annotations

from dataclasses import dataclass

from vpbatch.config.schema import ModelConfig

__all__ = ["Prices", "BATCH_DISCOUNT"]

BATCH_DISCOUNT = 0.5  # OpenAI Batch and Anthropic Message Batches bill half


@dataclass(frozen=True, slots=True)
class Prices:
    """A model's USD per 1M prompt and completion tokens, and whether it runs in batch mode."""

    price_in: float | None = None
    price_out: float | None = None
    batch: bool = False

    @classmethod
    def of(cls, m: ModelConfig) -> Prices:
        return cls(m.price_in, m.price_out, m.mode == "batch")

    def cost(self, prompt_tokens: float, completion_tokens: float) -> float | None:
        """USD for these tokens (reasoning is billed inside completion); None without prices."""
        if self.price_in is None and self.price_out is None:
            return None
        usd = (prompt_tokens * (self.price_in or 0.0)
               + completion_tokens * (self.price_out or 0.0)) / 1e6
        return usd * BATCH_DISCOUNT if self.batch else usd
