"""LoRA fine-tuning of Navig's Reasoner on NaviClues (the paper's recipe, with TRL's SFTTrainer).

The paper trained its Reasoner (Qwen2-VL-7B-Instruct) with ms-swift and released only the
checkpoint; this is the same recipe on the standard stack: `trl.SFTTrainer` over the dataset's
`messages` + `images` columns (TRL's vision-language contract: a chat whose user turn holds an
`{"type": "image"}` placeholder, and the list of PIL images that fill it), with a
`peft.LoraConfig` built from YAML. Hyper-parameters live in `navig/configs/reasoner_lora.yaml`
(LoRA r=8, alpha=32; AdamW betas (0.9, 0.95), lr 1e-4, 5 % warmup, cosine decay, weight decay
0.1, batch 1 with gradient accumulation, max length 2048).

Usage:

    navig train --dataset data/naviclues --model Qwen/Qwen2-VL-7B-Instruct --out runs/reasoner
    navig train ... --config my_recipe.yaml          # a copy of the default YAML with edits
    navig train ... --resume                          # continue from the last checkpoint-N in --out

Multi-GPU (data parallel): launch this module with accelerate or torchrun; every process runs the
same recipe and transformers' Trainer shards the batches:

    accelerate launch --num_processes 4 -m navig.train --dataset ... --model ... --out ...
    torchrun --nproc_per_node 4 -m navig.train --dataset ... --model ... --out ...

(`per_device_train_batch_size` is per GPU: the effective batch is that x GPUs x
`gradient_accumulation_steps`.) CPU training works too (fp32; slow but fine for tiny models).

Outputs in --out: `checkpoint-N/` (adapter + optimizer/scheduler state, for --resume),
`adapter/` (the final LoRA adapter + processor, loadable with
`peft.PeftModel.from_pretrained(base, out/"adapter")` and by `navig locate --adapter`),
`skipped_examples.jsonl` (examples whose image tokens would not fit max_length, with the cause),
and `train_summary.json`.

Datasets: a folder written by `Dataset.save_to_disk` / `DatasetDict.save_to_disk` (the split
`data.train_split`, "train" by default, is used), a folder of parquet/json files
(`datasets.load_dataset(DIR)`), or a Hub id.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Literal, Optional

import typer
import yaml
from pydantic import BaseModel, ConfigDict, Field

from naviclues.fsutil import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "reasoner_lora.yaml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSection(_Section):
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    attn_implementation: str | None = None
    processor_kwargs: dict[str, Any] = Field(default_factory=dict)


class DataSection(_Section):
    train_split: str = "train"
    check_lengths: bool = True
    # "completion": loss on the reasoning only, as ms-swift trains (prompt and image tokens are
    # masked); "all": the whole chat, TRL's default for a `messages` dataset
    loss_on: Literal["completion", "all"] = "completion"


class TrainRecipe(_Section):
    model: ModelSection = Field(default_factory=ModelSection)
    lora: dict[str, Any] = Field(default_factory=dict)  # peft.LoraConfig kwargs
    training: dict[str, Any] = Field(default_factory=dict)  # trl.SFTConfig kwargs
    data: DataSection = Field(default_factory=DataSection)


def _deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def load_recipe(path: Path | str | None = None, overrides: dict[str, Any] | None = None) -> TrainRecipe:
    """The default recipe, updated by a YAML file (section by section), then by `overrides`."""
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text("utf-8")) or {}
    if path is not None:
        user = yaml.safe_load(Path(path).read_text("utf-8")) or {}
        if not isinstance(user, dict):
            raise ValueError(f"{path}: a training config must be a YAML mapping")
        raw = _deep_merge(raw, user)
    if overrides:
        raw = _deep_merge(raw, overrides)
    return TrainRecipe.model_validate(raw)


def load_training_dataset(source: str | Path, split: str = "train"):
    """A `datasets.Dataset` from a save_to_disk folder, a data-file folder, or a Hub id."""
    from datasets import DatasetDict, load_dataset, load_from_disk

    path = Path(source)
    if path.exists():
        saved = any((path / name).exists() for name in ("dataset_dict.json", "dataset_info.json", "state.json"))
        data = load_from_disk(str(path)) if saved else load_dataset(str(path))
    else:
        data = load_dataset(str(source))
    if isinstance(data, DatasetDict) or hasattr(data, "keys"):
        if split not in data:
            raise ValueError(f"dataset {source}: no split {split!r} (splits: {sorted(data.keys())})")
        data = data[split]
    missing = {"messages"} - set(data.column_names)
    if missing or not ({"images", "image"} & set(data.column_names)):
        raise ValueError(
            f"dataset {source}: needs a `messages` column and an `images` (or `image`) column; "
            f"has {data.column_names}"
        )
    return data


def to_prompt_completion(row: dict[str, Any]) -> dict[str, Any]:
    """A `messages` chat as TRL's conversational prompt-completion pair: every turn before the last
    is the prompt, the last (the assistant's reasoning) the completion the loss is computed on."""
    messages = row["messages"]
    if not messages or messages[-1].get("role") != "assistant":
        raise ValueError(f"example {row.get('id', '?')}: the last message must be the assistant's reasoning")
    return {"prompt": messages[:-1], "completion": messages[-1:]}


def _resolve_dtype(name: str):
    import torch

    if name != "auto":
        return getattr(torch, name)
    if torch.cuda.is_available():
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def _image_token_id(processor) -> int | None:
    token_id = getattr(processor, "image_token_id", None)
    if token_id is None and getattr(processor, "image_token", None):
        token_id = processor.tokenizer.convert_tokens_to_ids(processor.image_token)
    return token_id


def check_lengths(dataset, processor, max_length: int | None,
                  completion_only: bool = False) -> tuple[list[int], list[dict[str, Any]], int]:
    """(indices to keep, skipped records, how many keep only a truncated answer).

    TRL truncates the tokenized chat at `max_length`, keeping the start; an example whose last
    image token sits past `max_length` would lose image tokens while its pixel values stay, which
    the model rejects (or worse, misaligns). Those are dropped with a record naming the example;
    examples where only the reasoning tail is cut are kept and counted.
    """
    from trl.data_utils import prepare_multimodal_messages

    keep, skipped, truncated = [], [], 0
    image_token = _image_token_id(processor)
    for index in range(len(dataset)):
        row = dataset[index]
        row_id = row.get("id", index)
        images = row.get("images") if "images" in row else [row.get("image")]
        try:
            messages = prepare_multimodal_messages(row["messages"], images=images)
            text = processor.apply_chat_template(messages, tokenize=False)
            ids = processor(text=[text], images=images or None, return_tensors="np")["input_ids"][0]
        except Exception as exc:  # a bad row is recorded, not fatal
            skipped.append({"index": index, "id": row_id, "reason": f"cannot render: {type(exc).__name__}: {exc}"})
            continue
        if max_length is not None and image_token is not None:
            positions = [i for i, t in enumerate(ids.tolist()) if t == image_token]
            if positions and positions[-1] >= max_length:
                skipped.append({"index": index, "id": row_id,
                                "reason": f"image tokens end at position {positions[-1] + 1} > max_length {max_length}",
                                "length": int(len(ids))})
                continue
        if completion_only and max_length is not None and len(ids) > max_length:
            # the loss covers the reasoning only: a prompt that fills max_length leaves nothing to train on
            prompt = processor.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
            n_prompt = len(processor(text=[prompt], images=images or None, return_tensors="np")["input_ids"][0])
            if n_prompt >= max_length:
                skipped.append({"index": index, "id": row_id, "length": int(len(ids)),
                                "reason": f"the prompt alone is {n_prompt} tokens >= max_length {max_length}: "
                                          "no reasoning token would be trained"})
                continue
        if max_length is not None and len(ids) > max_length:
            truncated += 1
        keep.append(index)
    return keep, skipped, truncated


def _trainer_state(checkpoint: Path) -> dict[str, Any]:
    return json.loads((checkpoint / "trainer_state.json").read_text("utf-8"))


def _finished(checkpoint: Path, args) -> bool:
    """Whether `checkpoint` already completed the run `args` plans (same max_steps / epochs)."""
    state = _trainer_state(checkpoint)
    control = (state.get("stateful_callbacks") or {}).get("TrainerControl") or {}
    stopped = bool((control.get("args") or {}).get("should_training_stop"))
    if args.max_steps and args.max_steps > 0:
        return state.get("global_step", 0) >= args.max_steps
    return stopped and state.get("num_train_epochs") == args.num_train_epochs


def _step_counter():
    from transformers import TrainerCallback

    class StepCounter(TrainerCallback):
        """Counts optimizer steps taken in this process run (a resumed run counts only new ones)."""

        def __init__(self):
            self.steps = 0

        def on_step_end(self, args, state, control, **kwargs):
            self.steps += 1

    return StepCounter()


def train(
    dataset: str | Path,
    model: str | Path,
    out: str | Path,
    config: str | Path | None = None,
    resume: bool | str = False,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Fine-tune `model` with LoRA on `dataset`; returns (and writes) the run summary."""
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from transformers.trainer_utils import get_last_checkpoint
    from trl import SFTConfig, SFTTrainer

    recipe = load_recipe(config, overrides)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    train_data = load_training_dataset(dataset, recipe.data.train_split)

    dtype = _resolve_dtype(recipe.model.dtype)
    processor = AutoProcessor.from_pretrained(str(model), **recipe.model.processor_kwargs)
    load_kwargs: dict[str, Any] = {"dtype": dtype}
    if recipe.model.attn_implementation:
        load_kwargs["attn_implementation"] = recipe.model.attn_implementation
    base = AutoModelForImageTextToText.from_pretrained(str(model), **load_kwargs)

    training = dict(recipe.training)
    on_gpu = torch.cuda.is_available() and not training.get("use_cpu", False)
    training.setdefault("bf16", on_gpu and dtype == torch.bfloat16)
    training.setdefault("fp16", on_gpu and dtype == torch.float16)
    training.setdefault("use_cpu", not on_gpu)
    max_length = training.get("max_length")

    skipped: list[dict[str, Any]] = []
    n_truncated = 0
    if recipe.data.check_lengths:
        keep, skipped, n_truncated = check_lengths(train_data, processor, max_length,
                                                   completion_only=recipe.data.loss_on == "completion")
        if skipped:
            train_data = train_data.select(keep)
        atomic_write_text(out / "skipped_examples.jsonl",
                          "".join(json.dumps(s, ensure_ascii=False, default=str) + "\n" for s in skipped))
        if skipped:
            log.warning("skipped %d example(s) whose image tokens exceed max_length; see %s",
                        len(skipped), out / "skipped_examples.jsonl")
    if len(train_data) == 0:
        raise ValueError(f"dataset {dataset}: no trainable example left (see {out / 'skipped_examples.jsonl'})")

    # the loss a run was started with is part of its checkpoints: resuming under another one would mix two
    recorded = out / "loss_on.json"
    started_with = json.loads(recorded.read_text("utf-8")).get("loss_on") if recorded.exists() else None
    completion_only = recipe.data.loss_on == "completion"
    if completion_only:
        train_data = train_data.map(to_prompt_completion, remove_columns=["messages"])
        training.setdefault("completion_only_loss", True)
    args = SFTConfig(output_dir=str(out), **training)
    peft_config = LoraConfig(**recipe.lora)
    counter = _step_counter()
    trainer = SFTTrainer(model=base, args=args, train_dataset=train_data, processing_class=processor,
                         peft_config=peft_config, callbacks=[counter])

    checkpoint: str | None = None
    if isinstance(resume, str) and resume:
        checkpoint = resume
    elif resume:
        checkpoint = get_last_checkpoint(str(out))
        if checkpoint is None:
            log.warning("--resume: no checkpoint-N in %s; training from the start", out)
    if checkpoint is not None and started_with not in (None, recipe.data.loss_on):
        raise ValueError(f"{checkpoint} was trained with data.loss_on={started_with}; this recipe says "
                         f"{recipe.data.loss_on}: resume with the same setting or train into a new --out")
    if checkpoint is not None and started_with is None:
        log.warning("%s predates the recorded loss setting; resuming with data.loss_on=%s", checkpoint,
                    recipe.data.loss_on)
    if trainer.is_world_process_zero():
        atomic_write_json(recorded, {"loss_on": recipe.data.loss_on})
    if checkpoint is not None and _finished(Path(checkpoint), args):
        # transformers would take one more step past a finished checkpoint: load its adapter instead
        from peft import load_peft_weights, set_peft_model_state_dict

        set_peft_model_state_dict(trainer.model, load_peft_weights(checkpoint))
        trainer.state.global_step = _trainer_state(Path(checkpoint))["global_step"]
        training_loss = None
        log.info("%s already finished the planned steps; exporting its adapter", checkpoint)
    else:
        training_loss = trainer.train(resume_from_checkpoint=checkpoint).training_loss

    adapter_dir = out / "adapter"
    trainer.save_model(str(adapter_dir))
    processor.save_pretrained(str(adapter_dir))
    summary = {
        "dataset": str(dataset),
        "model": str(model),
        "adapter": str(adapter_dir),
        "resumed_from": checkpoint,
        "global_step": int(trainer.state.global_step),
        "steps_this_run": counter.steps,
        "train_loss": float(training_loss) if training_loss is not None else None,
        "n_examples": len(train_data),
        "n_skipped": len(skipped),
        "n_truncated_answers": n_truncated,
        "dtype": str(dtype).replace("torch.", ""),
        "recipe": json.loads(recipe.model_dump_json()),
    }
    if trainer.is_world_process_zero():
        atomic_write_json(out / "train_summary.json", summary)
    return summary


def command(
    dataset: str = typer.Option(..., help="save_to_disk folder, data-file folder, or Hub id"),
    model: str = typer.Option(..., help="base VLM: Hub id or local path"),
    out: Path = typer.Option(..., help="output folder (checkpoints, adapter, summary)"),
    config: Optional[Path] = typer.Option(None, help="YAML recipe (defaults: navig/configs/reasoner_lora.yaml)"),
    resume: bool = typer.Option(False, help="continue from the last checkpoint-N in --out"),
    resume_from: Optional[str] = typer.Option(None, help="continue from this checkpoint folder"),
    max_steps: Optional[int] = typer.Option(None, help="stop after this many optimizer steps (overrides the recipe)"),
) -> None:
    """Fine-tune the Reasoner with LoRA (TRL SFTTrainer) on a NaviClues-style dataset."""
    overrides = {"training": {"max_steps": max_steps}} if max_steps else None
    summary = train(dataset, model, out, config=config, resume=resume_from or resume, overrides=overrides)
    print(json.dumps({k: v for k, v in summary.items() if k != "recipe"}, indent=1))


def main(argv: list[str] | None = None) -> None:
    """Entry point for `python -m navig.train` (what accelerate / torchrun launch per process)."""
    app = typer.Typer(add_completion=False)
    app.command()(command)
    app(args=argv)


if __name__ == "__main__":
    main()
