"""The Reasoner: the fine-tuned VLM (base model + NaviClues LoRA) writes a reasoning per image.

Its requests carry `use_adapter=True`; the backend routes them to the adapter (transformers:
adapter enabled; openai: the adapter's served model name). Batched: one `generate` per batch.
"""
from __future__ import annotations

from PIL import Image

from navig.backends.base import VLM, VLMError, VLMRequest
from navig.prompts import REASONING_PROMPT


class Reasoner:
    def __init__(self, vlm: VLM, *, prompt: str = REASONING_PROMPT, max_new_tokens: int = 512,
                 temperature: float = 0.0) -> None:
        self.vlm = vlm
        self.prompt = prompt
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature

    def requests(self, images: list[Image.Image]) -> list[VLMRequest]:
        return [VLMRequest(images=[im], prompt=self.prompt, max_new_tokens=self.max_new_tokens,
                           temperature=self.temperature, use_adapter=True) for im in images]

    def reason(self, images: list[Image.Image]) -> list[str]:
        return self.vlm.generate(self.requests(images)) if images else []

    def reason_each(self, images: list[Image.Image]) -> list[str | VLMError]:
        """One reasoning or one `VLMError` per image: a failed request costs only its image."""
        return self.vlm.generate_each(self.requests(images)) if images else []
