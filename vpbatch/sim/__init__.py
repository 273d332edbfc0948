"""The simulated respondent: a known value profile (or the authors' recorded answers) served
in-process or over an OpenAI-compatible loopback server, with latency and injected faults."""

__all__: list[str] = []
