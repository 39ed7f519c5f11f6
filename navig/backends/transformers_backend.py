"""Local VLM: any `AutoModelForImageTextToText` + `AutoProcessor` (hub id or folder), optional LoRA.

Requests are grouped by (adapter on/off, temperature), cut into padded batches of `max_batch`
(left padding, so every answer starts right after its prompt) and decoded greedily unless a
request asks for a temperature. With an adapter loaded, base-model requests run inside
`disable_adapter()`, so the Reasoner (adapter) and the Searcher/Guesser (base model) share one
copy of the weights, as in the paper.
"""
from __future__ import annotations

import contextlib
import logging
from itertools import groupby

from navig.backends.base import VLM, VLMRequest

log = logging.getLogger(__name__)

_DTYPES = {"float32": "float32", "fp32": "float32", "float16": "float16", "fp16": "float16",
           "bfloat16": "bfloat16", "bf16": "bfloat16"}


class TransformersVLM(VLM):
    def __init__(self, model: str, *, adapter: str | None = None, device: str = "cpu",
                 dtype: str | None = None, max_batch: int = 8) -> None:
        super().__init__()
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.name = f"transformers:{model}"
        self.device = device
        self.max_batch = max(1, max_batch)
        kwargs: dict = {}
        if dtype and dtype != "auto":
            if dtype not in _DTYPES:
                raise ValueError(f"unknown dtype {dtype!r}; use one of {sorted(_DTYPES)} or 'auto'")
            kwargs["dtype"] = getattr(torch, _DTYPES[dtype])
        elif dtype == "auto":
            kwargs["dtype"] = "auto"
        if device == "auto":
            kwargs["device_map"] = "auto"
        try:
            self.processor = AutoProcessor.from_pretrained(model)
        except ImportError as exc:  # e.g. Qwen2-VL's image/video processors import torchvision
            raise ImportError(f"cannot load the processor of {model}: {exc}. Qwen2-VL needs torchvision matching "
                              "your torch: pip install 'naviclues[qwen]'") from exc
        tokenizer = getattr(self.processor, "tokenizer", self.processor)
        tokenizer.padding_side = "left"  # decoder-only generation needs the prompt flush right
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.tokenizer = tokenizer
        base = AutoModelForImageTextToText.from_pretrained(model, **kwargs)
        if device != "auto":
            base = base.to(device)
        base.eval()
        # one hook on the underlying model counts decoder forward passes whatever wraps it
        base.register_forward_pre_hook(lambda *_: self.stats.add(forward_passes=1))
        self._adapter = None
        if adapter:
            from peft import PeftModel

            self.model = PeftModel.from_pretrained(base, adapter).eval()
            self._adapter = adapter
        else:
            self.model = base

    @property
    def has_adapter(self) -> bool:
        return self._adapter is not None

    def _prompt_text(self, request: VLMRequest) -> str:
        content = [{"type": "image"} for _ in request.images] + [{"type": "text", "text": request.prompt}]
        messages = [{"role": "user", "content": content}]
        return self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def generate(self, requests: list[VLMRequest]) -> list[str]:
        answers: list[str | None] = [None] * len(requests)
        order = sorted(range(len(requests)), key=lambda i: (requests[i].use_adapter, requests[i].temperature))
        for (use_adapter, temperature), group in groupby(
            order, key=lambda i: (requests[i].use_adapter, requests[i].temperature)
        ):
            indices = list(group)
            for start in range(0, len(indices), self.max_batch):
                chunk = indices[start : start + self.max_batch]
                for i, text in zip(chunk, self._generate_batch([requests[i] for i in chunk], use_adapter, temperature)):
                    answers[i] = text
        return [a or "" for a in answers]

    def _generate_batch(self, batch: list[VLMRequest], use_adapter: bool, temperature: float) -> list[str]:
        import torch

        texts = [self._prompt_text(r) for r in batch]
        images = [img.convert("RGB") for r in batch for img in r.images]
        inputs = self.processor(text=texts, images=images or None, padding=True, return_tensors="pt")
        device = self.model.device if self.device == "auto" else self.device
        inputs = inputs.to(device)
        max_new = max(r.max_new_tokens for r in batch)
        gen_kwargs: dict = {"max_new_tokens": max_new, "pad_token_id": self.tokenizer.pad_token_id}
        if temperature and temperature > 0:
            gen_kwargs.update(do_sample=True, temperature=float(temperature))
        else:
            gen_kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        adapter_off = (
            self.model.disable_adapter() if (self.has_adapter and not use_adapter) else contextlib.nullcontext()
        )
        with torch.inference_mode(), adapter_off:
            output = self.model.generate(**inputs, **gen_kwargs)
        self.stats.add(generate_calls=1, requests=len(batch))
        new_tokens = output[:, inputs["input_ids"].shape[1]:]
        return [
            self.tokenizer.decode(row[: r.max_new_tokens], skip_special_tokens=True).strip()
            for row, r in zip(new_tokens, batch)
        ]
