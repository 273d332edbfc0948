"""Providers: take one job's messages and parameters, give an Answer or a classified failure.

One file per API (`openai`, `anthropic`, `openrouter`, `sim`) over the OpenAI-compatible base
(`openai_compat`); `registry` picks one from the config and the environment; `http` makes the
aiohttp session (no hidden retries). Each failure is classified once, here, as permanent,
transient or rate-limited: nothing downstream second-guesses it.
"""
