"""Bodies of the LoRA admin endpoints; field names are vLLM's, so its clients and scripts work."""

from __future__ import annotations

from pydantic import BaseModel, Field


class LoadLoRAAdapterRequest(BaseModel):
    lora_name: str = Field(min_length=1, description="The name requests will use in `model`.")
    lora_path: str = Field(min_length=1, description="A PEFT adapter folder on the server's host.")


class UnloadLoRAAdapterRequest(BaseModel):
    lora_name: str = Field(min_length=1)
