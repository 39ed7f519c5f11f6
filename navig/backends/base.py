"""One VLM interface for every backend: the pipeline sends requests and reads strings back.

`VLM.generate(requests)` takes a list of `VLMRequest` and answers one string per request, in
order, or raises. `VLM.generate_each(requests)` answers one string OR one `VLMError` per request,
so a request that fails (after the backend's retries) costs only its own image: the pipeline uses
it. Backends decide how to batch (transformers: padded batches; openai: a thread pool) and count
what they did in `stats`, which the benchmarks read.
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


@dataclass(frozen=True)
class VLMError:
    """Why one request got no answer: the exception's type and message (never the API key)."""

    kind: str  # exception class name, e.g. "InternalServerError"
    message: str

    @classmethod
    def from_exception(cls, exc: BaseException) -> "VLMError":
        return cls(type(exc).__name__, str(exc))

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


class VLMRequestError(RuntimeError):
    """`generate` could not answer every request; `errors` holds (request index, VLMError)."""

    def __init__(self, errors: list[tuple[int, VLMError]], total: int) -> None:
        self.errors = errors
        index, first = errors[0]
        super().__init__(f"{len(errors)} of {total} VLM request(s) failed; request {index}: {first}")


class VLM(ABC):
    """A vision-language model answering prompts about images."""

    name: str = "vlm"

    def __init__(self) -> None:
        self.stats = CallStats()

    @abstractmethod
    def generate(self, requests: list[VLMRequest]) -> list[str]:
        """One answer per request, in order; raises when any request fails."""

    def generate_each(self, requests: list[VLMRequest]) -> list[str | VLMError]:
        """One answer or one `VLMError` per request, in order; never raises for a failed request.

        Default: the batched `generate`; if the batch fails, each request is tried alone so that
        one bad request (an odd image, an over-long prompt) fails only itself.
        """
        if not requests:
            return []
        try:
            return list(self.generate(requests))
        except Exception as exc:  # noqa: BLE001 - turned into per-request records below
            if len(requests) == 1:
                return [VLMError.from_exception(exc)]
        results: list[str | VLMError] = []
        for request in requests:
            try:
                results.append(self.generate([request])[0])
            except Exception as exc:  # noqa: BLE001 - recorded for this request only
                results.append(VLMError.from_exception(exc))
        return results

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
