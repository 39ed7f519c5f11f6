"""The instruction paired with every NaviClues image.

Navig's Reasoner is fine-tuned to answer this prompt with an expert's reasoning about an image; the
dataset's `messages` column and navig's inference (navig.prompts) use this one constant so that
training and evaluation ask the same question. The wording is the paper's reasoning prompt, as
published with its code (Navig repository, prompts.py `reasoning_prompt`; also quoted in the paper's
appendix as the NaviClues query), trailing newline included.
"""
from __future__ import annotations

REASONING_PROMPT = (
    "Given an image, craft a brief and cohesive reasoning path that deduces this location based on the "
    "visual clues present in the image. Using a tone of exploration and inference. Carefully analyze and "
    "link observations of natural features (climate, vegetation, terrain), man-made structures (roads, "
    "buildings, signage), and distinct landmarks. Allow these observations to naturally lead you to the "
    "correct country, enhancing the accuracy of your deductions. Start the reasoning without any intro, "
    "and make sure to make it brief.\n"
)

__all__ = ["REASONING_PROMPT"]
