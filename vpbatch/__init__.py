"""vpbatch: Value Portrait sweeps of language models, and the psychometric scoring of them."""

__version__ = "0.1.0"
__all__ = ["__version__"]
