"""The sweep: takes a config and the benchmark, gives a log of finished jobs.

`config` validates the TOML; `grid` streams the jobs (model × condition × version × item ×
repeat), each with its request body and the id that digests it; `engine` runs one anyio task
group over the models, from a `context.SweepContext`, one `context.Runner` per model: a
`pipeline` takes one model's jobs through `limits` (RPM, TPM, the adaptive concurrency cap) and
`retry` (the one retry loop) to a provider; `batch/` does the same through provider batch
APIs. Both log and count each outcome through `outcome`. `plan` and `status` say what a sweep
will cost and how far it got, priced by `cost`.
"""
