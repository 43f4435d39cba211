"""Turn engine deltas into OpenAI response bodies and stream chunks, one module per endpoint family."""
