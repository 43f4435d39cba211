"""OpenAI's response shapes as JSON Schemas, and a check that a body conforms to them."""
