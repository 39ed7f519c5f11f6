"""Zero-shot detection of the paper's objects: ONE forward pass per image batch for ALL prompts.

The released code ran GroundingDINO once per prompt ("road sign", then "house", then "building
sign"). GroundingDINO reads a caption of several phrases ("road sign. house. building sign.") and
scores every query box against every caption token, so one pass answers all prompts: a box's
score is its best token probability (the box threshold), and its label is the phrase whose tokens
score highest, kept only if that phrase clears the text threshold. OWLv2 (optional) takes the
prompts as a list natively.
"""
from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from navig.searcher.records import Detection

DEFAULT_DETECTOR = "IDEA-Research/grounding-dino-tiny"
DEFAULT_PROMPTS = ("road sign", "house", "building sign")


@dataclass
class Crop:
    label: str
    box: tuple[float, float, float, float]
    score: float
    image: Image.Image


class ZeroShotDetector:
    def __init__(self, model: str = DEFAULT_DETECTOR, *, prompts: tuple[str, ...] = DEFAULT_PROMPTS,
                 box_threshold: float = 0.5, text_threshold: float = 0.5, device: str = "cpu") -> None:
        from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

        self.name = model
        self.prompts = tuple(p.strip().lower() for p in prompts)
        self.box_threshold = box_threshold
        self.text_threshold = text_threshold
        self.device = device
        self.processor = AutoProcessor.from_pretrained(model)
        self.model = AutoModelForZeroShotObjectDetection.from_pretrained(model).to(device).eval()
        self.kind = "owl" if self.model.config.model_type in ("owlv2", "owlvit") else "grounding"
        self.forward_passes = 0
        if self.kind == "grounding":
            self._caption = " ".join(f"{p}." for p in self.prompts)
            self._spans = self._phrase_token_spans()

    def _phrase_token_spans(self) -> list[tuple[int, int]]:
        """Token positions of each phrase inside the encoded caption ([CLS] p1 . p2 . ... [SEP])."""
        tok = self.processor.tokenizer
        spans, start = [], 1
        for phrase in self.prompts:
            n = len(tok(phrase, add_special_tokens=False)["input_ids"])
            spans.append((start, start + n))
            start += n + 1  # the "." separator
        return spans

    def detect(self, images: list[Image.Image]) -> list[list[Detection]]:
        """All detections above the thresholds, per image, best first (one forward pass)."""
        if not images:
            return []
        import torch

        images = [im.convert("RGB") for im in images]
        sizes = [(im.height, im.width) for im in images]
        if self.kind == "grounding":
            inputs = self.processor(images=images, text=[self._caption] * len(images), return_tensors="pt")
        else:
            # OWL's text tower has fixed-length positions: pad every prompt to them
            max_len = self.model.config.text_config.max_position_embeddings
            inputs = self.processor(images=images, text=[list(self.prompts)] * len(images), padding="max_length",
                                    truncation=True, max_length=max_len, return_tensors="pt")
        inputs = inputs.to(self.device)
        with torch.inference_mode():
            outputs = self.model(**inputs)
        self.forward_passes += 1
        if self.kind == "grounding":
            return self._grounding_detections(outputs, sizes)
        return self._owl_detections(outputs, sizes)

    def _grounding_detections(self, outputs, sizes) -> list[list[Detection]]:
        import torch

        probs = outputs.logits.sigmoid()  # (batch, queries, text tokens)
        phrase_scores = torch.stack([probs[..., a:b].max(dim=-1).values for a, b in self._spans], dim=-1)
        box_scores = probs.max(dim=-1).values
        cx, cy, w, h = outputs.pred_boxes.unbind(-1)
        corners = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1).clamp(0, 1)
        result = []
        for b, (height, width) in enumerate(sizes):
            best_phrase_score, best_phrase = phrase_scores[b].max(dim=-1)
            keep = (box_scores[b] > self.box_threshold) & (best_phrase_score > self.text_threshold)
            scale = torch.tensor([width, height, width, height], dtype=corners.dtype)
            dets = [
                Detection(label=self.prompts[int(best_phrase[q])],
                          box=tuple(round(float(v), 1) for v in corners[b, q].cpu() * scale),
                          score=round(float(box_scores[b, q]), 4))
                for q in torch.nonzero(keep).flatten().tolist()
            ]
            result.append(sorted(dets, key=lambda d: -d.score))
        return result

    def _owl_detections(self, outputs, sizes) -> list[list[Detection]]:
        # OWLv2 pads images to a square (bottom/right): boxes are relative to that square
        squares = [(max(h, w), max(h, w)) for h, w in sizes]
        found = self.processor.post_process_grounded_object_detection(
            outputs, threshold=self.box_threshold, target_sizes=squares,
            text_labels=[list(self.prompts)] * len(sizes),
        )
        result = []
        for (height, width), res in zip(sizes, found):
            dets = []
            for box, score, label in zip(res["boxes"], res["scores"], res["labels"]):
                x0, x1 = sorted(min(max(float(v), 0.0), float(width)) for v in (box[0], box[2]))
                y0, y1 = sorted(min(max(float(v), 0.0), float(height)) for v in (box[1], box[3]))
                box_t = (x0, y0, x1, y1)
                dets.append(Detection(label=self.prompts[int(label)], box=tuple(round(v, 1) for v in box_t),
                                      score=round(float(score), 4)))
            result.append(sorted(dets, key=lambda d: -d.score))
        return result


def select_crops(image: Image.Image, detections: list[Detection], *, top_k: int = 3,
                 min_crop_px: int = 224) -> list[Crop]:
    """The paper's crop rule: per label, the `top_k` best boxes, skipping a box only when BOTH
    sides are under `min_crop_px` (small sign crops are unreadable for the VLM)."""
    crops: list[Crop] = []
    per_label: dict[str, int] = {}
    for det in sorted(detections, key=lambda d: -d.score):
        if det.width < min_crop_px and det.height < min_crop_px:
            continue
        if det.width < 1 or det.height < 1 or per_label.get(det.label, 0) >= top_k:
            continue
        per_label[det.label] = per_label.get(det.label, 0) + 1
        x0, y0, x1, y1 = (int(round(v)) for v in det.box)
        crops.append(Crop(label=det.label, box=det.box, score=det.score, image=image.crop((x0, y0, x1, y1))))
    return crops
