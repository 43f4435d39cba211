"""HTTP routes, one module per endpoint family. Never imports vllm."""
