"""Providers: take one job's body (built from messages and parameters), give an Answer or a
classified failure.

One module per API declares all its facts in one `spec.ProviderSpec` and registers it with
`spec.register` at import: its name, `key_env` (the default key variable), `settings` (extra
model keys as `config.providers.Setting`: type, default, meaning; the config loader validates
them and fills `ModelConfig.settings`), `wire` (the request builder and answer reader, a
`contract.Wire`: pure and keyless, so the grid digests the body into the job id), `reasoning`
(a `spec.ReasoningRules`: the known-model table of `reasoning`, more ids to guess, the shape of
an unknown reasoning model), `batch` (its `batchapi.BatchAPI` class, or None) and
`choice_formats`. `register` also gives config (which sits below and never imports providers)
the `config.providers.ProviderFacts` it validates with. Failures are classified at the
boundary: HTTP statuses and network errors in `transport.failures`, a 2xx body in the wire's
`answer`; nothing downstream second-guesses them. A 400 that refuses `max_tokens` or
`temperature` by name is classified there too, as `adapted` (`adapt`: the model's form
switches, the job is re-sent at once). `registry` turns a model's config into a wire
(`wire_for`) or a provider (`make_provider`); `http` delivers over HTTP, `sim` in-process.

Adding a provider: its module, one line below, and its tests.
"""

# The builtin providers: importing each registers it, in this order (one line per provider).
# isort: off
from vpbatch.providers import openai  # noqa: F401
from vpbatch.providers import anthropic  # noqa: F401
from vpbatch.providers import openrouter  # noqa: F401
from vpbatch.providers import sim  # noqa: F401
from vpbatch.providers import bedrock  # noqa: F401
from vpbatch.providers import gemini  # noqa: F401
from vpbatch.providers import azure  # noqa: F401
# isort: on
