"""The per-video stage contract.

A stage is a small picklable object. `run(ctx)` never raises for a bad item: it returns a
`StageOutcome` whose `error` names the cause (video2dataset style). The pipeline records
the outcome in the run store and decides whether later stages can run.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from naviclues.fsutil import fingerprint, inside, safe_name
from collect.records import StageError, Video

if TYPE_CHECKING:  # pragma: no cover
    from collect.config import CollectConfig


@dataclass
class VideoContext:
    """What a stage sees: the video, its folder, the run folder and the configuration."""

    video: Video
    out_dir: Path
    config: "CollectConfig"

    @property
    def video_dir(self) -> Path:
        # resolved once per context: a rerun's skip check asks for it dozens of times per video
        path = self.__dict__.get("_video_dir")
        if path is None:
            path = self.__dict__["_video_dir"] = inside(self.out_dir, "videos", safe_name(self.video.id))
        path.mkdir(parents=True, exist_ok=True)
        return path

    def path(self, *parts: str) -> Path:
        """`naviclues.fsutil.inside(video_dir, *parts)` on strings (video_dir is resolved already)."""
        root = str(self.video_dir)
        real = os.path.realpath(os.path.join(root, *parts))
        if real != root and not real.startswith(root + os.sep):
            raise ValueError(f"path {real} escapes {root}")
        return Path(real)


@dataclass
class StageOutcome:
    status: str  # "done" | "failed" | "skipped"
    outputs: dict[str, Any] = field(default_factory=dict)  # small JSON: artifact paths, counts
    error: StageError | None = None
    note: str | None = None  # why skipped, or a warning

    @classmethod
    def done(cls, **outputs: Any) -> "StageOutcome":
        return cls("done", outputs=outputs)

    @classmethod
    def skipped(cls, note: str, **outputs: Any) -> "StageOutcome":
        return cls("skipped", outputs=outputs, note=note)

    @classmethod
    def failed(cls, stage: str, exc: BaseException | str, type_: str | None = None) -> "StageOutcome":
        if isinstance(exc, BaseException):
            return cls("failed", error=StageError(stage, type_ or type(exc).__name__, str(exc)[:2000]))
        return cls("failed", error=StageError(stage, type_ or "Error", exc[:2000]))


class Stage:
    """Base class: subclasses set `name`, `requires` and implement `run`."""

    name: ClassVar[str] = ""
    requires: ClassVar[tuple[str, ...]] = ()  # stages whose "done" (or "skipped") must precede
    # keys of `StageOutcome.outputs` holding artifact paths (relative to the video folder) a rerun
    # must find again before it trusts the cached row
    output_keys: ClassVar[tuple[str, ...]] = ()

    def missing_outputs(self, ctx: VideoContext, outputs: dict[str, Any]) -> list[str]:
        """Recorded artifacts of a finished run that are gone (deleted by hand, a disk cleanup…): a
        row whose outputs are missing is redone, not reported as cached."""
        missing = []
        for key in self.output_keys:
            rel = (outputs or {}).get(key)
            if isinstance(rel, str) and rel and not (ctx.video_dir / rel).is_file():
                missing.append(rel)
        return missing

    def config_slice(self, ctx: VideoContext) -> Any:
        """The part of the configuration that changes this stage's output (no secrets)."""
        return None

    def input_files(self, ctx: VideoContext) -> list[Path]:
        """Files this stage reads; their sizes+mtimes feed the fingerprint."""
        return []

    def fingerprint(self, ctx: VideoContext) -> str:
        files = []
        for p in self.input_files(ctx):
            p = Path(p)
            if p.exists():
                st = p.stat()
                files.append((p.name, st.st_size, int(st.st_mtime_ns)))
            else:
                files.append((p.name, None))
        return fingerprint(self.name, self.config_slice(ctx), files)

    def run(self, ctx: VideoContext) -> StageOutcome:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, ctx: VideoContext) -> StageOutcome:
        try:
            return self.run(ctx)
        except Exception as exc:  # last line of defence: one bad video never stops a run
            return StageOutcome.failed(self.name, exc)
