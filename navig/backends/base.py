"""One VLM interface for every backend: the pipeline sends requests and reads strings back.

`VLM.generate(requests)` takes a list of `VLMRequest` and answers one string per request, in
order. Backends decide how to batch (transformers: padded batches; openai: a thread pool) and
count what they did in `stats`, which the benchmarks read.
"""
from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from PIL import Image


@dataclass
class VLMRequest:
    images: list[Image.Image]
    prompt: str
    max_new_tokens: int = 256
    temperature: float = 0.0  # 0 = greedy
    # True: answer with the LoRA adapter (the Reasoner); False: the base model (Searcher/Guesser)
    use_adapter: bool = False


@dataclass
class CallStats:
    """What a backend did: `generate_calls` model invocations (a padded batch for transformers,
    an HTTP request for openai), `forward_passes` decoder forward passes (transformers: counted
    by a hook; openai: unknown, equals generate_calls), `requests` prompts answered."""

    generate_calls: int = 0
    forward_passes: int = 0
    requests: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, generate_calls: int = 0, forward_passes: int = 0, requests: int = 0) -> None:
        with self._lock:
            self.generate_calls += generate_calls
            self.forward_passes += forward_passes
            self.requests += requests

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {"generate_calls": self.generate_calls, "forward_passes": self.forward_passes,
                    "requests": self.requests}

    def reset(self) -> None:
        with self._lock:
            self.generate_calls = self.forward_passes = self.requests = 0


class VLM(ABC):
    """A vision-language model answering prompts about images."""

    name: str = "vlm"

    def __init__(self) -> None:
        self.stats = CallStats()

    @abstractmethod
    def generate(self, requests: list[VLMRequest]) -> list[str]:
        """One answer per request, in order."""

    @property
    def has_adapter(self) -> bool:
        return False


def load_vlm(
    backend: str,
    model: str,
    *,
    adapter: str | None = None,
    base_url: str | None = None,
    api_key_env: str = "OPENAI_API_KEY",
    device: str = "cpu",
    dtype: str | None = None,
    max_batch: int = 8,
    concurrency: int = 4,
) -> VLM:
    """Build the backend named `backend` ("transformers" | "openai")."""
    if backend == "transformers":
        from navig.backends.transformers_backend import TransformersVLM

        return TransformersVLM(model, adapter=adapter, device=device, dtype=dtype, max_batch=max_batch)
    if backend == "openai":
        from navig.backends.openai_backend import OpenAIVLM

        return OpenAIVLM(model, adapter=adapter, base_url=base_url, api_key_env=api_key_env,
                         concurrency=concurrency)
    raise ValueError(f"unknown VLM backend {backend!r} (expected 'transformers' or 'openai')")
