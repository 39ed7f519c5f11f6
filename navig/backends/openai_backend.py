"""Remote VLM: any OpenAI-compatible chat-completions server (vLLM, OpenAI, ...).

Images travel as base64 JPEG data URLs; requests run on a bounded thread pool and transient
errors (connection, timeout, 429, 5xx) are retried with exponential backoff (tenacity). Each
request succeeds or fails on its own: `generate_each` answers a `VLMError` for a request that
still fails after its retries while the others of the batch keep their answers. With an
adapter, Reasoner requests name the adapter as the model, which is how vLLM serves LoRA modules
(`--lora-modules name=path`). The API key is read from an environment variable and never logged;
`OPENAI_API_KEY` is sent to api.openai.com only, a variable named with `api_key_env` to `base_url`.
"""
from __future__ import annotations

import base64
import io
import os
from concurrent.futures import ThreadPoolExecutor

from PIL import Image

from navig.backends.base import VLM, VLMError, VLMRequest, VLMRequestError
from naviclues.api_keys import OPENAI_BASE_URL, api_key_for


def image_data_url(image: Image.Image, quality: int = 90) -> str:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


class OpenAIVLM(VLM):
    def __init__(self, model: str, *, adapter: str | None = None, base_url: str | None = None,
                 api_key_env: str = "OPENAI_API_KEY", concurrency: int = 4, timeout_s: float = 120.0,
                 max_attempts: int = 4) -> None:
        super().__init__()
        from openai import OpenAI

        self.name = f"openai:{model}"
        self.model = model
        self.adapter = adapter
        self.concurrency = max(1, concurrency)
        self.max_attempts = max(1, max_attempts)
        # the SDK would itself read OPENAI_BASE_URL / OPENAI_API_KEY: resolve both here, so the key
        # goes only to the host it is for (naviclues.api_keys); vLLM accepts any placeholder
        base_url = base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_BASE_URL
        api_key = api_key_for(base_url, api_key_env) or "EMPTY"
        self.client = OpenAI(base_url=base_url, api_key=api_key, timeout=timeout_s, max_retries=0)

    @property
    def has_adapter(self) -> bool:
        return self.adapter is not None

    def _one(self, request: VLMRequest) -> str:
        import openai
        from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

        content = [{"type": "image_url", "image_url": {"url": image_data_url(img)}} for img in request.images]
        content.append({"type": "text", "text": request.prompt})
        model = self.adapter if (request.use_adapter and self.adapter) else self.model
        transient = (openai.APIConnectionError, openai.APITimeoutError, openai.RateLimitError,
                     openai.InternalServerError)
        for attempt in Retrying(stop=stop_after_attempt(self.max_attempts),
                                wait=wait_exponential(multiplier=0.5, max=8),
                                retry=retry_if_exception_type(transient), reraise=True):
            with attempt:
                self.stats.add(generate_calls=1, forward_passes=1)
                response = self.client.chat.completions.create(
                    model=model,
                    messages=[{"role": "user", "content": content}],
                    max_tokens=request.max_new_tokens,
                    temperature=request.temperature,
                )
        self.stats.add(requests=1)
        return (response.choices[0].message.content or "").strip()

    def generate_each(self, requests: list[VLMRequest]) -> list[str | VLMError]:
        if not requests:
            return []
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(requests))) as pool:
            futures = [pool.submit(self._one, r) for r in requests]
        results: list[str | VLMError] = []
        for future in futures:
            exc = future.exception()
            results.append(VLMError.from_exception(exc) if exc is not None else future.result())
        return results

    def generate(self, requests: list[VLMRequest]) -> list[str]:
        results = self.generate_each(requests)
        errors = [(i, r) for i, r in enumerate(results) if isinstance(r, VLMError)]
        if errors:
            raise VLMRequestError(errors, len(results))
        return results  # type: ignore[return-value]
