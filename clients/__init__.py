"""Clients for mixtral-serve and any OpenAI-compatible server: a Python client (sync and async),
the `mixtral-chat` terminal chat and the `mixtral-load` load tester.

The client needs only httpx; it never imports the server or vLLM.
"""

from clients.async_client import AsyncClient
from clients.client import Client
from clients.errors import APIConnectionError, APIError, ClientError
from clients.retry import RetryPolicy
from clients.types import Choice, Delta, Model, Response, Usage

__all__ = [
    "APIConnectionError",
    "APIError",
    "AsyncClient",
    "Choice",
    "Client",
    "ClientError",
    "Delta",
    "Model",
    "Response",
    "RetryPolicy",
    "Usage",
]
