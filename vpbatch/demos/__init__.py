"""Demos: `make run` (`demo`: the recorded models and a simulated respondent over real HTTP)
and `make run-local` (`local_demo` with `llama_server`: a real small model under llama.cpp).

They take the repo's configs, give a scored and reported run dir and a printed summary.
"""
