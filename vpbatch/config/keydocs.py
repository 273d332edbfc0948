"""What each config key means: the one table the config reference (docs) is generated from.

The keys and their types and defaults are the config dataclasses' own (`config.schema`); this
module adds only what code cannot say: the meaning, and a default's wording where the field's
value (None, a factory) would not tell a reader. tests/test_docs.py keeps the two in step:
every field has a meaning here and every meaning a field.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["KeyDoc", "KEY_DOCS", "TABLE_DOCS"]


@dataclass(frozen=True, slots=True)
class KeyDoc:
    meaning: str
    default: str | None = None  # how to read the default, when the field's value does not say


# What each TOML table is, in the order the reference shows them.
TABLE_DOCS: dict[str, str] = {
    "run": "`[run]`: defaults for every model, and the sweep's own settings.",
    "models": "`[[models]]`: one table per model, or one table for several (a list of ids). "
              "`[providers.<p>]` takes the same keys (not `name`, `model`, `names`, "
              "`model_prefix`) as defaults for every model of provider `<p>`.",
    "limits": "`[limits.NAME]`: one budget that the models with `limit_group = \"NAME\"` share.",
    "grids": "`[grids]`: the conditions every model runs besides the plain (vanilla) prompt, "
             "which always runs.",
}

KEY_DOCS: dict[str, dict[str, KeyDoc]] = {
    "run": {
        "name": KeyDoc("run dir name: `runs/<name>/` unless `--run-dir`"),
        "versions": KeyDoc("prompt versions, from `v1 v1_reversed v2 v2_reversed v3 "
                           "v3_reversed`", "all 6"),
        "repeats": KeyDoc("answers per (condition, version, item); the repeat number is part "
                          "of the job id"),
        "temperature": KeyDoc("the paper's setting"),
        "max_tokens": KeyDoc("the paper's setting; reasoning models get 4096 unless their "
                             "table sets `max_tokens`"),
        "seed": KeyDoc("the paper's setting; not sent to Anthropic (the Messages API has no "
                       "seed)"),
        "items": KeyDoc("only the first N items (smoke tests, slices)", "all 520"),
        "conditions_file": KeyDoc("persona and steering texts (relative to the config file)",
                                  "`configs/personas.toml`"),
        "data": KeyDoc("the Value Portrait data root (relative to the config file); set here, "
                       "it wins over the variable", "`$VPBATCH_DATA`, else the cache"),
        "limits_per_shard": KeyDoc("sharded runs: `false` = each model's `rpm`/`tpm` are for "
                                   "all N shards together, so each shard paces itself at 1/N "
                                   "of them; `true` = each shard has limits of its own (its "
                                   "own key)"),
        "answer": KeyDoc("how every model answers unless its table says otherwise: `\"text\"` "
                         "(the paper's free text) or `\"choice\"` (JSON naming one of the six "
                         "phrases)"),
        "fail_on_error": KeyDoc("failed jobs a model may have and the run still exit 0: a "
                                "number below 1 is a fraction of the model's jobs, an integer "
                                "a count (`0`: none); counted over the log as it stands"),
        "stop_after": KeyDoc("a model is stopped when this many of its jobs fail in a row, or "
                             "this many of its requests in a row time out (or find nothing "
                             "listening, before its first answer), with no answer between; "
                             "`0`: never"),
        "min_rated": KeyDoc("share of a model's jobs that must end with a rated answer for "
                            "the run to exit 0 (unrated answers: empty, refused, cut off, or "
                            "not one of the six phrases); `0` turns the check off"),
    },
    "models": {
        "name": KeyDoc("label in the log, scores and report; unique",
                       "the id's part after its last `/`"),
        "names": KeyDoc("with a list of ids: their names, in order", "derived from the ids"),
        "model_prefix": KeyDoc("put before every id of the table (`\"meta-llama/\"`, "
                               "`\"replay:\"`); names come from the ids as listed", '`""`'),
        "provider": KeyDoc("`openai` (also any OpenAI-compatible server via `base_url`), "
                           "`anthropic`, `openrouter`, `sim` (the simulated respondent "
                           "in-process)"),
        "model": KeyDoc("the provider's model id, or a list of ids (one model each; an inline "
                        "table `{ id = ..., name = ..., <own keys> }` per id also works); "
                        "`sim:<profile>` or `replay:<recorded model>` for the simulator"),
        "base_url": KeyDoc("e.g. `http://127.0.0.1:8000/v1`; checked on load: `http(s)://`, a "
                           "host, a port in 1-65535 if one is written, no query, no "
                           "`user:password@`", "the provider's"),
        "api_key_env": KeyDoc("the **name** of the variable holding the key (never the key); "
                              "required with a non-local `base_url`",
                              "`OPENAI_API_KEY` / `ANTHROPIC_API_KEY` / `OPENROUTER_API_KEY`"),
        "rpm": KeyDoc("client-side requests per minute", "unlimited"),
        "tpm": KeyDoc("client-side tokens per minute", "unlimited"),
        "concurrency": KeyDoc("most requests in flight (the ceiling that AIMD returns to)"),
        "max_tokens": KeyDoc("overrides `[run]`'s (reasoning models need more)", "`[run]`'s"),
        "temperature": KeyDoc("overrides `[run]`'s", "`[run]`'s"),
        "seed": KeyDoc("overrides `[run]`'s", "`[run]`'s"),
        "reasoning": KeyDoc("`true` for reasoning models: o1/o3/o4, `*r1*`, `*thinking*`, "
                            "`qwq` (max_tokens 4096, OpenAI `max_completion_tokens`, "
                            "Anthropic `thinking`, OpenRouter `reasoning`)",
                            "guessed from the id"),
        "timeout_connect": KeyDoc("seconds to connect"),
        "timeout_read": KeyDoc("seconds: the longest silence while waiting for an answer"),
        "max_attempts": KeyDoc("tries per job, the first included (a 429 job: once refused for "
                               "rate_limit_window)"),
        "max_retry_seconds": KeyDoc("a job is failed when its next backoff would end past "
                                    "this many seconds"),
        "rate_limit_window": KeyDoc("seconds a job refused with 429 is retried, attempts "
                                    "regardless; the window the request rate is learned in "
                                    "(docs/guides/rate-limits-windows.md)"),
        "price_in": KeyDoc("USD per 1M prompt tokens, for `vpbatch plan`", "none"),
        "price_out": KeyDoc("USD per 1M completion tokens, for `vpbatch plan`", "none"),
        "mode": KeyDoc("`\"online\"`, or `\"batch\"`: the provider's batch API (OpenAI, "
                       "Anthropic; not OpenRouter)"),
        "batch_size": KeyDoc("batch mode: requests per batch",
                             "the provider's cap (OpenAI 50,000; Anthropic 100,000)"),
        "batch_poll_s": KeyDoc("batch mode: seconds between polls of an open batch", "60"),
        "answer": KeyDoc("`\"text\"` or `\"choice\"` for this model", "`[run]`'s"),
        "choice_format": KeyDoc("choice mode, `provider = \"openai\"` only: `\"json_schema\"` "
                                "(OpenAI's structured outputs; also vLLM, Ollama, llama.cpp's "
                                "`llama-server`) or `\"json_object\"` (llama-cpp-python's "
                                "server)"),
        "extra_body": KeyDoc("merged into the request body (nested tables merge one level "
                             "deep); part of the job id, like every field sent"),
        "extra_body_remove": KeyDoc("body keys to drop after `extra_body` is merged (TOML "
                                    "has no null), e.g. `[\"max_tokens\"]`; `\"a.b\"` drops "
                                    "`b` inside `a` (docs/guides/reasoning-models.md)", "none"),
        "sim": KeyDoc("simulated-respondent settings: `profile`, `seed`, `noise`, "
                      "`steer_strength`, `persona_scale`, `p_verbose`, `p_refuse`, ..."),
        "personas": KeyDoc("this model's persona grid", "`[grids]`'s"),
        "steering": KeyDoc("this model's steering grid", "`[grids]`'s"),
        "limit_group": KeyDoc("the name of a `[limits.NAME]` table whose limits this model "
                              "shares with the group's other members", "none"),
        "max_response_bytes": KeyDoc("a longer HTTP answer fails unread as \"larger than "
                                     "max_response_bytes\" (permanent): no server can fill the "
                                     "memory or the log", "1048576 (1 MiB)"),
        "fail_on_error": KeyDoc("overrides `[run]`'s", "`[run]`'s"),
        "stop_after": KeyDoc("overrides `[run]`'s", "`[run]`'s"),
        "min_rated": KeyDoc("overrides `[run]`'s", "`[run]`'s"),
    },
    "limits": {
        "rpm": KeyDoc("requests per minute for the group's members together, paced like a "
                      "model's", "unlimited"),
        "tpm": KeyDoc("tokens per minute for the members together", "unlimited"),
        "concurrency": KeyDoc("most requests in flight for the members together; one AIMD "
                              "cap: a 429 to any member halves it",
                              "the members' `concurrency` summed"),
    },
    "grids": {
        "personas": KeyDoc("persona names (`\"gender=male\"`, ...) or `\"all\"`",
                           "`[]`: vanilla only"),
        "steering": KeyDoc("steering dimensions (`\"Power\"`, ...) or `\"all\"`",
                           "`[]`: vanilla only"),
    },
}
