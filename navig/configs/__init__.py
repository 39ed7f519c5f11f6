"""Packaged YAML recipes (reasoner_lora.yaml: the paper's LoRA fine-tuning defaults)."""
