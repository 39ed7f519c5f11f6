"""Offline stand-ins for smoke tests and benchmarks: tiny random models (built in seconds, never
downloaded) and a local OpenAI-compatible server speaking the real protocol on 127.0.0.1.

Each `make_tiny_*` saves a model + processor under `dir` and returns the folder, loadable with
the stock `from_pretrained` of the class the real model uses:

- `make_tiny_vlm(dir)`: `LlavaForConditionalGeneration` (tiny Llama text model, tiny CLIP vision
  tower) + `LlavaProcessor` (CLIPImageProcessor + a WordLevel `PreTrainedTokenizerFast` with a chat
  template and the `<image>` token). Loads with `AutoModelForImageTextToText`/`AutoProcessor`.
- `make_tiny_grounding_dino(dir)`: `GroundingDinoForObjectDetection` (tiny Swin backbone, tiny
  BERT text encoder, 2 decoder layers) + `GroundingDinoProcessor` (BertTokenizerFast from a small
  vocab file).
- `make_tiny_clip(dir)`: `CLIPModel` + `CLIPProcessor` (same WordLevel tokenizer recipe).

`make_scene_images(dir, n)` writes deterministic 640x480 street-like pictures (crops of random
boxes on them exceed the paper's 224 px filter).

`openai_server(answer)` serves `/v1/chat/completions` from a callable, for backends and benchmarks
that talk to a served model. Nothing here is imported by the pipeline itself.
"""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# Words the tiny tokenizers know: prompt vocabulary plus JSON-ish pieces, so random models emit
# text that looks like (broken) answers.
_WORDS = (
    "the a of in is and to image road sign house building location country city latitude longitude "
    "guess expert json geo localization reasoning clues text map search guidebook details analyze "
    "region finding type this core one sentence extract visible store signs return none france "
    "kazakhstan almaty paris brazil japan tokyo chile santiago { } : , \" . - 0 1 2 3 4 5 6 7 8 9"
).split()

_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }}: "
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<image> {% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}\n{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}"
)


def _word_level_tokenizer(extra_special: list[str]):
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<s>", "</s>", *extra_special]
    vocab = {tok: i for i, tok in enumerate(specials + sorted(set(_WORDS)))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    )
    backend.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        additional_special_tokens=extra_special or None,
    )
    return tok


def make_tiny_vlm(dir: Path | str) -> Path:
    """A tiny random Llava (image-text-to-text) model + processor saved in `dir`."""
    import torch
    from transformers import (
        CLIPImageProcessorPil,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    out = Path(dir)
    if (out / "config.json").exists():
        return out
    tokenizer = _word_level_tokenizer(["<image>"])
    tokenizer.chat_template = _CHAT_TEMPLATE
    tokenizer.padding_side = "left"
    image_token_id = tokenizer.convert_tokens_to_ids("<image>")
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    vision = CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        image_size=32, patch_size=8, projection_dim=32,
    )
    config = LlavaConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=image_token_id,
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
        projector_hidden_act="gelu",
    )
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(config).eval()
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=8,
        vision_feature_select_strategy="default",
        chat_template=_CHAT_TEMPLATE,
        image_token="<image>",
        num_additional_image_tokens=1,
    )
    out.mkdir(parents=True, exist_ok=True)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def make_tiny_grounding_dino(dir: Path | str) -> Path:
    """A tiny random GroundingDINO (Swin backbone, BERT text encoder) + processor saved in `dir`."""
    import torch
    from transformers import (
        BertConfig,
        BertTokenizerFast,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessorPil,
        GroundingDinoProcessor,
        SwinConfig,
    )

    out = Path(dir)
    if (out / "config.json").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "road", "sign", "house", "building",
             "car", "pole", "tree", "shop"]
    tokenizer = BertTokenizerFast(vocab={tok: i for i, tok in enumerate(vocab)}, do_lower_case=True)
    backbone = SwinConfig(
        image_size=64, patch_size=4, embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1],
        window_size=4, out_indices=[2, 3, 4],
    )
    text = BertConfig(
        vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=64,
    )
    config = GroundingDinoConfig(
        backbone_config=backbone, text_config=text, d_model=32, num_queries=20,
        encoder_layers=1, decoder_layers=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
        encoder_attention_heads=4, decoder_attention_heads=4, num_feature_levels=4,
        encoder_n_points=2, decoder_n_points=2, max_text_len=32,
    )
    torch.manual_seed(0)
    model = GroundingDinoForObjectDetection(config).eval()
    # Random box heads predict ~5% of the image; bias width/height up so that boxes on a
    # 640x480 scene pass the paper's 224 px crop filter and the crop-level calls get exercised.
    with torch.no_grad():
        for head in model.bbox_embed:
            head.layers[-1].bias[2:] += 1.5
    image_processor = GroundingDinoImageProcessorPil(size={"shortest_edge": 64, "longest_edge": 96})
    processor = GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def _clip_like_towers(tokenizer, *, layers: int, image_size: int, patch_size: int, max_positions: int) -> dict:
    """Text and vision tower settings of a tiny CLIP-style model (CLIP, OWLv2)."""
    tower = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": layers, "num_attention_heads": 4}
    text = {**tower, "vocab_size": len(tokenizer), "max_position_embeddings": max_positions,
            "pad_token_id": tokenizer.pad_token_id, "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id}
    return {"text_config": text, "vision_config": {**tower, "image_size": image_size, "patch_size": patch_size}}


def _save(out: Path, model, processor) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def make_tiny_clip(dir: Path | str) -> Path:
    """A tiny random CLIPModel + CLIPProcessor saved in `dir`."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPProcessor

    out = Path(dir)
    if (out / "config.json").exists():
        return out
    tokenizer = _word_level_tokenizer([])
    config = CLIPConfig(**_clip_like_towers(tokenizer, layers=2, image_size=32, patch_size=8, max_positions=77),
                        projection_dim=16)
    torch.manual_seed(0)
    model = CLIPModel(config).eval()
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    return _save(out, model, CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer))


def make_tiny_owlv2(dir: Path | str) -> Path:
    """A tiny random OWLv2 detector + processor saved in `dir` (the optional detector)."""
    import torch
    from transformers import Owlv2Config, Owlv2ForObjectDetection, Owlv2ImageProcessorPil, Owlv2Processor

    out = Path(dir)
    if (out / "config.json").exists():
        return out
    tokenizer = _word_level_tokenizer([])
    tokenizer.model_max_length = 16
    config = Owlv2Config(**_clip_like_towers(tokenizer, layers=1, image_size=64, patch_size=16, max_positions=16),
                         projection_dim=32)
    torch.manual_seed(0)
    model = Owlv2ForObjectDetection(config).eval()
    image_processor = Owlv2ImageProcessorPil(size={"height": 64, "width": 64})
    return _save(out, model, Owlv2Processor(image_processor=image_processor, tokenizer=tokenizer))


def make_scene_images(dir: Path | str, n: int = 3, size: tuple[int, int] = (640, 480)) -> list[Path]:
    """Deterministic street-like JPEGs: sky, road, a house and a sign with text."""
    from PIL import Image, ImageDraw

    out = Path(dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    w, h = size
    for i in range(n):
        img = Image.new("RGB", size, (120 + 40 * (i % 3), 170, 230))
        draw = ImageDraw.Draw(img)
        draw.rectangle([0, h * 2 // 3, w, h], fill=(70, 70, 70))
        draw.rectangle([40 + 20 * i, h // 3, 300, h * 2 // 3], fill=(200, 160 - 30 * (i % 3), 120))
        draw.rectangle([380, 90 + 10 * i, 600, 200], fill=(20, 110, 40), outline=(255, 255, 255), width=4)
        draw.text((400, 130), f"ALMATY {i + 1} km", fill=(255, 255, 255))
        path = out / f"scene_{i:02d}.jpg"
        img.save(path, quality=90)
        paths.append(path)
    return paths


def write_jsonl(path: Path | str, rows: list[dict]) -> Path:
    path = Path(path)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


class LocalServer:
    """A ThreadingHTTPServer on 127.0.0.1 that records what it received."""

    def __init__(self, handler_cls):
        self.requests: list[dict] = []
        handler_cls.owner = self
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler_cls)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class JsonHandler(BaseHTTPRequestHandler):
    """Request handler base of the local servers: quiet, records each request on its LocalServer,
    answers JSON."""

    owner: LocalServer

    def log_message(self, *args):
        pass

    def record(self, **fields) -> dict:
        entry = {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                 "time": time.monotonic(), **fields}
        self.owner.requests.append(entry)
        return entry

    def reply(self, status: int, payload=None) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def openai_server(answer, fail_first: int = 0) -> LocalServer:
    """OpenAI-compatible `/v1/chat/completions`; `answer(body) -> str` writes each reply (an int is
    answered as that HTTP error status); the first `fail_first` requests get HTTP 503 (to exercise
    retries)."""

    class Handler(JsonHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            self.record(body=body)
            if len(self.owner.requests) <= fail_first:
                return self.reply(503, {"error": {"message": "overloaded", "type": "server_error"}})
            if self.path.rstrip("/") != "/v1/chat/completions":
                return self.reply(404)
            text = answer(body)
            if isinstance(text, int):  # an HTTP error status chosen by the test
                return self.reply(text, {"error": {"message": "rejected", "type": "invalid_request_error"}})
            self.reply(200, {
                "id": f"chatcmpl-{len(self.owner.requests)}", "object": "chat.completion", "created": 0,
                "model": body.get("model"),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            })

    return LocalServer(Handler)
