"""LoRA training of the Reasoner on a tiny random VLM (CPU, seconds): train, reload, generate, resume."""
from __future__ import annotations

import json
import shutil

import pytest

pytest.importorskip("trl")
pytest.importorskip("peft")

from navig_fixtures import make_tiny_vlm  # noqa: E402

PROMPT = "analyze this image and guess the country"
REASONINGS = [
    "the road sign text is in france and the house type is french",
    "this road and building type is in japan tokyo region",
    "the store signs text is in brazil",
    "the map location is kazakhstan almaty the road is in the region",
]


def _rows(n: int = 4) -> list[dict]:
    from PIL import Image

    return [{
        "id": f"round/{i}", "lat": 10.0 * i, "lng": -5.0 * i, "country": "France", "reasoning": REASONINGS[i % 4],
        "messages": [
            {"role": "user", "content": [{"type": "image", "text": None}, {"type": "text", "text": PROMPT}]},
            {"role": "assistant", "content": [{"type": "text", "text": REASONINGS[i % 4]}]},
        ],
        "images": [Image.new("RGB", (48, 40), (40 * i, 120, 200 - 30 * i))],
    } for i in range(n)]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from datasets import Dataset, DatasetDict

    root = tmp_path_factory.mktemp("train")
    model = make_tiny_vlm(root / "vlm")
    rows = _rows()
    DatasetDict({"train": Dataset.from_list(rows), "test": Dataset.from_list(rows[:1])}).save_to_disk(str(root / "ds"))
    return root, model


def _cli_app():
    from navig.cli import app

    return app


def test_recipe_defaults_are_the_papers(tmp_path):
    from navig.train import load_recipe

    recipe = load_recipe()
    assert (recipe.lora["r"], recipe.lora["lora_alpha"]) == (8, 32)
    t = recipe.training
    assert (t["adam_beta1"], t["adam_beta2"], t["learning_rate"]) == (0.9, 0.95, 1e-4)
    assert (t["warmup_steps"], t["lr_scheduler_type"], t["weight_decay"]) == (0.05, "cosine", 0.1)
    assert (t["per_device_train_batch_size"], t["max_length"]) == (1, 2048)
    custom = tmp_path / "r.yaml"
    custom.write_text("lora:\n  target_modules: [q_proj, v_proj]\ntraining:\n  gradient_accumulation_steps: 8\n")
    recipe = load_recipe(custom)
    assert recipe.lora["target_modules"] == ["q_proj", "v_proj"] and recipe.lora["r"] == 8
    assert recipe.training["gradient_accumulation_steps"] == 8 and recipe.training["learning_rate"] == 1e-4
    custom.write_text("trainig: {}\n")
    with pytest.raises(ValueError, match="trainig"):
        load_recipe(custom)


def test_image_tokens_never_truncated(tiny):
    from transformers import AutoProcessor

    from navig.train import check_lengths, load_training_dataset

    root, model = tiny
    data = load_training_dataset(root / "ds")
    processor = AutoProcessor.from_pretrained(model)
    # the tiny processor expands <image> into 16 tokens after "user:" -> the image ends past position 12
    keep, skipped, truncated = check_lengths(data, processor, max_length=12)
    assert keep == [] and len(skipped) == len(data)
    assert skipped[0]["id"] == "round/0" and "image tokens end at position" in skipped[0]["reason"]
    keep, skipped, truncated = check_lengths(data, processor, max_length=24)  # images fit, answers cut
    assert keep == list(range(len(data))) and skipped == [] and truncated == len(data)
    # with the loss on the reasoning only, a row whose prompt alone fills max_length has nothing to train
    from trl.data_utils import prepare_multimodal_messages

    row = data[0]
    prompt = processor.apply_chat_template(prepare_multimodal_messages(row["messages"], images=row["images"])[:-1],
                                           tokenize=False, add_generation_prompt=True)
    n_prompt = len(processor(text=[prompt], images=row["images"], return_tensors="np")["input_ids"][0])
    keep, skipped, _ = check_lengths(data, processor, max_length=n_prompt, completion_only=True)
    assert keep == [] and "no reasoning token would be trained" in skipped[0]["reason"]
    keep, skipped, truncated = check_lengths(data, processor, max_length=n_prompt + 2, completion_only=True)
    assert keep == list(range(len(data))) and truncated == len(data)  # room for part of the reasoning


def test_one_step_cli_then_reload_and_generate(tiny, tmp_path):
    import torch
    from peft import PeftModel
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from typer.testing import CliRunner

    root, model = tiny
    out = tmp_path / "run"
    result = CliRunner().invoke(_cli_app(), ["train", "--dataset", str(root / "ds"), "--model", str(model),
                                             "--out", str(out), "--max-steps", "1"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["global_step"] == 1 and summary["n_examples"] == 4 and summary["n_skipped"] == 0
    adapter_cfg = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert adapter_cfg["r"] == 8 and adapter_cfg["lora_alpha"] == 32

    base = AutoModelForImageTextToText.from_pretrained(model)
    tuned = PeftModel.from_pretrained(base, out / "adapter").eval()
    lora_layers = [n for n, _ in tuned.named_parameters() if "lora_A" in n]
    assert lora_layers and all("language_model" in n for n in lora_layers)  # the vision tower stays frozen
    processor = AutoProcessor.from_pretrained(out / "adapter")
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": PROMPT}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = processor(text=[text], images=[Image.new("RGB", (48, 40), "green")], return_tensors="pt")
    with torch.inference_mode():
        output = tuned.generate(**inputs, max_new_tokens=6, do_sample=False)
    assert output.shape[1] == inputs["input_ids"].shape[1] + 6


def test_checkpoints_and_resume(tiny, tmp_path):
    from safetensors.torch import load_file

    from navig.train import train

    root, model = tiny
    out = tmp_path / "run"
    fast = {"training": {"max_steps": 2, "save_steps": 1, "logging_steps": 1, "warmup_steps": 0,
                         "learning_rate": 1e-2}}
    first = train(root / "ds", model, out, overrides=fast)
    assert first["steps_this_run"] == 2 and first["resumed_from"] is None
    assert (out / "checkpoint-1").is_dir() and (out / "checkpoint-2").is_dir()
    weights = load_file(out / "adapter" / "adapter_model.safetensors")
    assert any(float(w.abs().sum()) > 0 for k, w in weights.items() if "lora_B" in k)  # training moved LoRA B

    # lose the last checkpoint: --resume continues from checkpoint-1 and runs only step 2
    shutil.rmtree(out / "checkpoint-2")
    resumed = train(root / "ds", model, out, resume=True, overrides=fast)
    assert resumed["resumed_from"].endswith("checkpoint-1")
    assert resumed["steps_this_run"] == 1 and resumed["global_step"] == 2
    # everything done: a further resume trains nothing
    again = train(root / "ds", model, out, resume=True, overrides=fast)
    assert again["resumed_from"].endswith("checkpoint-2") and again["steps_this_run"] == 0
    exported = load_file(out / "adapter" / "adapter_model.safetensors")
    saved = load_file(out / "checkpoint-2" / "adapter_model.safetensors")
    assert exported.keys() == saved.keys() and all(bool((exported[k] == saved[k]).all()) for k in saved)
    # the loss a run started with is kept: resuming it under the other one is refused
    with pytest.raises(ValueError, match="loss_on=completion"):
        train(root / "ds", model, out, resume=True, overrides={**fast, "data": {"loss_on": "all"}})


def test_dataset_errors_name_the_cause(tmp_path):
    from datasets import Dataset

    from navig.train import load_training_dataset

    Dataset.from_list([{"id": "x", "text": "no chat"}]).save_to_disk(str(tmp_path / "bad"))
    with pytest.raises(ValueError, match="needs a `messages` column"):
        load_training_dataset(tmp_path / "bad")
    from datasets import DatasetDict

    DatasetDict({"test": Dataset.from_list([{"messages": [], "images": []}])}).save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(ValueError, match=r"no split 'train' \(splits: \['test'\]\)"):
        load_training_dataset(tmp_path / "dd")


def test_loss_covers_the_reasoning_only(tiny):
    """With the recipe's `loss_on: completion`, TRL's vision collator masks the prompt and image tokens."""
    from transformers import AutoProcessor
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    from navig.train import load_recipe, load_training_dataset, to_prompt_completion

    root, model = tiny
    assert load_recipe().data.loss_on == "completion"
    processor = AutoProcessor.from_pretrained(model)
    data = load_training_dataset(root / "ds").map(to_prompt_completion, remove_columns=["messages"])
    collator = DataCollatorForVisionLanguageModeling(processor=processor, completion_only_loss=True)
    batch = collator([data[0]])
    ids, labels = batch["input_ids"][0], batch["labels"][0]
    image_token = processor.tokenizer.convert_tokens_to_ids("<image>")
    trained = ids[labels != -100]
    assert image_token not in trained.tolist() and (ids == image_token).any()
    answer = processor.tokenizer.decode(trained, skip_special_tokens=True)
    assert REASONINGS[0].split()[0] in answer and PROMPT.split()[0] not in answer
    with pytest.raises(ValueError, match="assistant"):
        to_prompt_completion({"id": "x", "messages": [{"role": "user", "content": []}]})
