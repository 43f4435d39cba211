"""mixtral-serve: an OpenAI-compatible server for Mixtral-family models on vLLM."""

__version__ = "0.1.0"
