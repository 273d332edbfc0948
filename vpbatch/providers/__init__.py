"""Providers: take one job's body (built from messages and parameters), give an Answer or a
classified failure.

`contract` names the two interfaces: a `Wire` is an API's format (body, headers, answer; pure
and keyless, so the grid digests the body into the job id) and a `Provider` is what the sweep
uses. One file per API (`openai`, `anthropic`, `openrouter`, `sim`) builds its provider by
composing a wire (`openai_compat` is the Chat Completions one) with a delivery: `http` (the
endpoint, the session without hidden retries) or the in-process respondent. `registry` picks
one from the config and the environment; `tokens` estimates a request's tokens before it is
sent. Each failure is classified once, in `failures`, as permanent, transient or
rate-limited: nothing downstream second-guesses it.
"""
