"""Providers: one file per API, thin subclasses of one OpenAI-compatible base."""
