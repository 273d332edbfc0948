"""The simulated respondent: takes chat requests, gives answers from a known value profile
(or the authors' recorded answers of 33 models).

Served in-process (`provider = "sim"`) or as an OpenAI-compatible loopback server
(`vpbatch sim serve`) with latency and injected faults, so tests, benchmarks and the demo
exercise the real HTTP path without keys.
"""

__all__: list[str] = []
