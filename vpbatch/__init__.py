"""vpbatch: Value Portrait sweeps of language models, and the psychometric scoring of them.

The subpackages follow the data: `benchmark` (items, prompts, parsers, conditions) →
`sweep` (config, grid of jobs, engine, pipeline, limits, retry) → `providers` (one per API) →
`log` (records, the append-only log, run dirs) → `scoring` (ratings cube, scores, analysis) →
`report`. `sim` is the simulated respondent, `cli` the `vpbatch` command, `demos` the make
targets.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
