"""The sweep: takes a config and the benchmark, gives a log of finished jobs.

`config` validates the TOML; `grid` streams the jobs (model × condition × version × item ×
repeat) with their ids; `engine` runs one anyio task group over the models; `pipeline` takes
one model's jobs through `limits` (RPM, TPM, the adaptive concurrency cap) and `retry` (the one
retry loop) to a provider and appends each answer to the log; `batch/` does the same through
provider batch APIs. `plan` and `status` say what a sweep will cost and how far it got, priced
by `cost`.
"""
