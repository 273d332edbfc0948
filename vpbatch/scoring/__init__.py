"""Scoring: takes a run's log and the benchmark, gives value scores and their analysis.

`logscan` reads the log's lines into columns; `cube` fills the ratings array indexed
(model, condition, version, item) and `cubecache` keeps it beside the log; `scorer` applies the
paper's item rules to give raw and centred scores; `reliability` gives Cronbach's alpha;
`analysis` adds bootstrap intervals, persona deltas, steering and version spread; `human`
holds the European Social Survey reference; `audit` compares the two parsers; `scores_file`
writes scores.json.
"""
