"""The paper's ablations as named switches on `navig.pipeline.LocateOptions`.

- `full`: Navig as trained: the Reasoner with its LoRA adapter, the Searcher, the Guesser.
- `no_training` (w/o training): the same pipeline with the base model's Reasoner (adapter dropped).
- `no_reasoner` (w/o Reasoner): the Searcher's findings alone feed the Guesser.
- `no_searcher` (w/o Searcher): the Reasoner's analysis alone feeds the Guesser.
- `plain` (plain model): neither; the base VLM answers the Guesser prompt directly.
"""
from __future__ import annotations

import dataclasses
from typing import Any

ABLATIONS: dict[str, dict[str, Any]] = {
    "full": {},
    "no_training": {"adapter": None},
    "no_reasoner": {"use_reasoner": False},
    "no_searcher": {"use_searcher": False},
    "plain": {"adapter": None, "use_reasoner": False, "use_searcher": False},
}

# the paper's row labels
ABLATION_LABELS = {
    "full": "Navig",
    "no_training": "w/o training",
    "no_reasoner": "w/o Reasoner",
    "no_searcher": "w/o Searcher",
    "plain": "plain model",
}


def apply_ablation(options: Any, ablation: str) -> Any:
    """A copy of `options` (a dataclass or pydantic LocateOptions) with the ablation's switches set."""
    if ablation not in ABLATIONS:
        raise ValueError(f"unknown ablation {ablation!r}; choose from {sorted(ABLATIONS)}")
    changes = ABLATIONS[ablation]
    if not changes:
        return options
    if dataclasses.is_dataclass(options):
        return dataclasses.replace(options, **changes)
    if hasattr(options, "model_copy"):
        return options.model_copy(update=changes)
    raise TypeError(f"cannot apply an ablation to {type(options).__name__}")
