"""Crop comments: the VLM says, in one sentence, where this kind of object is most likely found.

Like the VLM OCR reader, it only makes requests; the pipeline sends comments and OCR of all the
crops of a batch in ONE batched `generate` (the released code made one call per crop).
"""
from __future__ import annotations

from PIL import Image

from navig.backends.base import VLMRequest
from navig.prompts import COMMENT_TEMPLATE


class CropCommenter:
    def __init__(self, max_new_tokens: int = 96) -> None:
        self.max_new_tokens = max_new_tokens

    def request(self, crop: Image.Image, label: str) -> VLMRequest:
        return VLMRequest(images=[crop], prompt=COMMENT_TEMPLATE.format(item=label),
                          max_new_tokens=self.max_new_tokens, temperature=0.0)
