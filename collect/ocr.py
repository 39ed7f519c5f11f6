"""A thin RapidOCR (PP-OCR on onnxruntime) wrapper: one engine per process, loaded lazily.

Loading the ONNX models costs ~0.5 s, so stages share `engine()`; worker processes each
build their own on first use. The detector runs in `max` mode: small crops are never
upscaled (the package default upscales the shorter side to 736 px, which makes cropped
OCR slower than OCR of the whole frame), and text lines are recognised one at a time
(`rec_batch_num=1`): batching pads every line to the widest one, so a long "494 km from
the correct location" line would triple the cost of the short "NEXT" and score lines.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Sequence

import numpy as np

_ENGINE = None
_LOCK = threading.Lock()


@dataclass(frozen=True)
class OcrLine:
    text: str
    score: float
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in the input image


def engine():
    """The process-wide RapidOCR engine (created on first call)."""
    global _ENGINE
    if _ENGINE is None:
        with _LOCK:
            if _ENGINE is None:
                from rapidocr_onnxruntime import RapidOCR

                # one thread by default: parallelism comes from worker processes, and on a
                # shared/small machine extra intra-op threads only contend
                threads = int(os.environ.get("COLLECT_OCR_THREADS", "1"))
                _ENGINE = RapidOCR(det_limit_type="max", det_limit_side_len=960, use_cls=False, rec_batch_num=1,
                                   intra_op_num_threads=threads, inter_op_num_threads=1)
    return _ENGINE


def read_text(image: np.ndarray, min_score: float = 0.5) -> list[OcrLine]:
    """Text lines found in an RGB image (top-to-bottom, left-to-right)."""
    image = np.ascontiguousarray(image)
    if image.ndim != 3 or image.shape[0] < 8 or image.shape[1] < 8:
        return []
    # RapidOCR expects OpenCV's BGR channel order for ndarray input
    result, _ = engine()(image[:, :, ::-1].copy(), use_cls=False)
    lines = []
    for box, text, score in result or []:
        if float(score) < min_score:
            continue
        xs = [p[0] for p in box]
        ys = [p[1] for p in box]
        lines.append(OcrLine(str(text), float(score), (min(xs), min(ys), max(xs), max(ys))))
    return lines


def recognize(image: np.ndarray, min_score: float = 0.5) -> str | None:
    """The text of an image holding one line (recognition only, no detection), or None.

    For a line the detector cut short: a lone "0" before "points" is often boxed as a dot."""
    image = np.ascontiguousarray(image)
    if image.ndim != 3 or image.shape[0] < 8 or image.shape[1] < 8:
        return None
    result, _ = engine()(image[:, :, ::-1].copy(), use_det=False, use_cls=False, use_rec=True)
    text, score = (result or [["", 0.0]])[0]
    return str(text) if text and float(score) >= min_score else None


def joined(lines: Sequence[OcrLine]) -> str:
    return " ".join(line.text for line in lines)
