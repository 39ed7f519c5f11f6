"""Sign text from crops: the paper's VLM prompt (`osm_gen`) or the offline RapidOCR engine.

The VLM reader does not call the model itself: it makes requests that the pipeline sends in the
same batched `generate` as the crop comments, then `parse` turns each answer into text or None
(the prompt tells the model to answer 'None' when nothing location-specific is legible).
"""
from __future__ import annotations

import re

from PIL import Image

from navig.backends.base import VLMRequest
from navig.prompts import OSM_GEN

_NONE = re.compile(r"^\W*(none|n/?a|null|no text)\W*$", re.IGNORECASE)


class VLMOcr:
    kind = "vlm"

    def __init__(self, max_new_tokens: int = 48) -> None:
        self.max_new_tokens = max_new_tokens

    def request(self, crop: Image.Image) -> VLMRequest:
        return VLMRequest(images=[crop], prompt=OSM_GEN, max_new_tokens=self.max_new_tokens, temperature=0.0)

    @staticmethod
    def parse(answer: str) -> str | None:
        text = (answer or "").strip().strip("`").strip().strip('"').strip("'").strip()
        if not text or _NONE.match(text) or text.lower().startswith("none"):
            return None
        return text[:200]


class RapidOcr:
    """Offline OCR (imported lazily: rapidocr-onnxruntime is optional for navig)."""

    kind = "rapidocr"

    def __init__(self, min_confidence: float = 0.5) -> None:
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError as exc:
            raise ImportError("--ocr rapidocr needs rapidocr-onnxruntime: pip install 'naviclues[ocr]' "
                              f"(or use --ocr vlm) [{exc}]") from exc

        self.engine = RapidOCR()
        self.min_confidence = min_confidence

    def read(self, crops: list[Image.Image]) -> list[str | None]:
        import numpy as np

        out = []
        for crop in crops:
            result, _ = self.engine(np.asarray(crop.convert("RGB")))
            words = [text for _box, text, conf in (result or []) if float(conf) >= self.min_confidence]
            out.append(" ".join(words).strip() or None)
        return out
