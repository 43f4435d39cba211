"""Pydantic request/response models of the OpenAI API subset we serve. No engine imports."""
