"""Transcript: captions (manual, then automatic) parsed with webvtt-py, else Whisper ASR.

YouTube automatic captions are "rolling": each cue repeats the previous line and adds a
new one whose words carry their own start times (`word<00:00:01.234><c> next</c>`). The
parser keeps only the new words, each with its own time, so every spoken word appears
once. Manual captions have cue times only; their words get times spread over the cue in
proportion to their length (an estimate, flagged by the "captions:manual" source).

Whisper results are cached per (backend, model, language) in `transcripts/` so switching
backends or models never recomputes an earlier one; `transcript.json` is the chosen one.
"""
from __future__ import annotations

import html
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from collect import layout
from naviclues.fsutil import atomic_write_json, read_json, safe_name
from collect.records import Segment, Transcript, Word, from_dict, to_dict
from collect.stages.base import Stage, StageOutcome, VideoContext

TRANSCRIPT_CACHE_DIR = "transcripts"
_TIME_TAG = re.compile(r"^\d{1,2}:\d{2}(?::\d{2})?\.\d{3}$")


# ---- captions ---------------------------------------------------------------------------------
def _tag_seconds(tag: str) -> float:
    import webvtt

    return webvtt.models.Timestamp.from_string(tag if tag.count(":") == 2 else f"00:{tag}").in_milliseconds() / 1000


def _tokens(line: str) -> Iterator[tuple[str, bool]]:
    from webvtt.models import _iter_cue_text_tokens  # webvtt-py's own cue-tag tokenizer

    return _iter_cue_text_tokens(line)


def _timed_words(line: str, cue_start: float) -> list[tuple[str, float]]:
    """(word, start) for a line with inline timestamp tags; untagged leading words start at the cue."""
    words: list[tuple[str, float]] = []
    current = cue_start
    for token, is_tag in _tokens(line):
        if is_tag:
            if _TIME_TAG.match(token.strip()):
                current = _tag_seconds(token.strip())
            continue
        for text in html.unescape(token).split():
            words.append((text, current))
    return words


def _plain(line: str) -> str:
    return " ".join(html.unescape("".join(t for t, is_tag in _tokens(line) if not is_tag)).split())


def _has_time_tags(line: str) -> bool:
    return any(is_tag and _TIME_TAG.match(t.strip()) for t, is_tag in _tokens(line))


def _spread(texts: list[str], start: float, end: float) -> list[Word]:
    """Times for words without their own: cue span shared in proportion to word length."""
    total = sum(len(t) for t in texts) or 1
    words, cursor = [], start
    for text in texts:
        span = (end - start) * len(text) / total
        words.append(Word(text=text, start=round(cursor, 3), end=round(cursor + span, 3)))
        cursor += span
    return words


def parse_vtt(path: Path | str, video_id: str = "", source: str | None = None,
              language: str | None = None) -> Transcript:
    """Parse a WebVTT file into a Transcript with word times.

    Auto-caption style files (inline `<hh:mm:ss.mmm>` tags) give exact word starts; rolling
    duplicates are dropped. Other files give one segment per cue.
    """
    import webvtt

    cues = list(webvtt.read(str(path)))
    timed = any(_has_time_tags(line) for cue in cues for line in cue.lines)
    source = source or ("captions:auto" if timed else "captions:manual")
    segments: list[Segment] = []
    if timed:
        lines_words: list[list[tuple[str, float]]] = []
        recent: list[str] = []  # plain text of lines already emitted (rolling duplicates)
        cue_end_of_line: list[float] = []
        for cue in cues:
            start = cue.start_time.in_milliseconds() / 1000
            end = cue.end_time.in_milliseconds() / 1000
            for line in cue.lines:
                plain = _plain(line)
                if not plain:
                    continue
                if not _has_time_tags(line) and plain in recent[-3:]:
                    continue  # the previous line repeated above the new one
                words = _timed_words(line, start)
                if words:
                    lines_words.append(words)
                    cue_end_of_line.append(end)
                    recent.append(plain)
        flat = [(text, start, k) for k, ws in enumerate(lines_words) for text, start in ws]
        by_line: list[list[Word]] = [[] for _ in lines_words]
        for i, (text, start, k) in enumerate(flat):
            following = flat[i + 1] if i + 1 < len(flat) else None
            if following is not None and following[2] == k:
                end = following[1]  # a word lasts until the next word of its line starts
            else:  # last word of its line: until the line's cue ends (or the next line starts)
                end = cue_end_of_line[k] if following is None else min(cue_end_of_line[k], following[1])
            by_line[k].append(Word(text=text, start=round(start, 3), end=round(max(end, start), 3)))
        for words in by_line:
            segments.append(Segment(start=words[0].start, end=words[-1].end,
                                    text=" ".join(w.text for w in words), words=words))
    else:
        previous = None
        for cue in cues:
            text = _plain(" ".join(cue.lines))
            if not text or text == previous:
                continue
            previous = text
            start = cue.start_time.in_milliseconds() / 1000
            end = cue.end_time.in_milliseconds() / 1000
            segments.append(Segment(start=start, end=end, text=text, words=_spread(text.split(), start, end)))
    return Transcript(video_id=video_id, source=source, language=language, segments=segments)


# ---- Whisper -----------------------------------------------------------------------------------
@contextmanager
def ffmpeg_on_path() -> Iterator[None]:
    """Whisper's load_audio runs `ffmpeg` from PATH: expose imageio-ffmpeg's binary under that name."""
    import imageio_ffmpeg

    exe = imageio_ffmpeg.get_ffmpeg_exe()
    with tempfile.TemporaryDirectory(prefix="ffmpeg-bin-") as tmp:
        link = Path(tmp) / "ffmpeg"
        link.symlink_to(exe)
        old = os.environ.get("PATH", "")
        os.environ["PATH"] = tmp + os.pathsep + old
        try:
            yield
        finally:
            os.environ["PATH"] = old


_WHISPER_MODELS: dict[tuple[str, str], Any] = {}


def _load_whisper(model: str, device: str) -> Any:
    import whisper

    key = (model, device)
    if key not in _WHISPER_MODELS:  # one load per process; stages run many videos per worker
        _WHISPER_MODELS[key] = whisper.load_model(model, device=device)
    return _WHISPER_MODELS[key]


def transcribe_whisper(audio_path: Path | str, model: str, *, device: str = "cpu", language: str | None = "en",
                       video_id: str = "") -> Transcript:
    """openai-whisper with word timestamps; `model` is a name ('small') or a checkpoint path."""
    import whisper

    asr = _load_whisper(model, device)
    with ffmpeg_on_path():
        result = whisper.transcribe(asr, str(audio_path), word_timestamps=True, language=language,
                                    fp16=device != "cpu", verbose=None, condition_on_previous_text=False)
    segments = []
    for seg in result.get("segments", []):
        words = [Word(text=w["word"].strip(), start=round(float(w["start"]), 3), end=round(float(w["end"]), 3))
                 for w in seg.get("words", []) if w.get("word", "").strip()]
        segments.append(Segment(start=round(float(seg["start"]), 3), end=round(float(seg["end"]), 3),
                                text=seg.get("text", "").strip(), words=words))
    return Transcript(video_id=video_id, source=f"whisper:{_model_label(model)}",
                      language=result.get("language") or language, segments=segments)


def transcribe_faster_whisper(audio_path: Path | str, model: str, *, device: str = "cpu",
                              language: str | None = "en", video_id: str = "") -> Transcript:
    from faster_whisper import WhisperModel  # optional extra: pip install naviclues[faster-whisper]

    asr = WhisperModel(model, device=device, compute_type="int8" if device == "cpu" else "float16")
    seg_iter, info = asr.transcribe(str(audio_path), word_timestamps=True, language=language)
    segments = []
    for seg in seg_iter:
        words = [Word(text=w.word.strip(), start=round(w.start, 3), end=round(w.end, 3))
                 for w in (seg.words or []) if w.word.strip()]
        segments.append(Segment(start=round(seg.start, 3), end=round(seg.end, 3), text=seg.text.strip(), words=words))
    return Transcript(video_id=video_id, source=f"faster-whisper:{_model_label(model)}",
                      language=getattr(info, "language", None) or language, segments=segments)


def _model_label(model: str) -> str:
    """A name for the source field: model names as given, checkpoint paths by file name (no local paths)."""
    return Path(model).name if ("/" in model or os.sep in model) and Path(model).exists() else model


# ---- stage ---------------------------------------------------------------------------------------
class TranscriptStage(Stage):
    name = "transcript"
    output_keys = ("transcript",)
    requires = ("download",)

    def config_slice(self, ctx: VideoContext) -> Any:
        cfg = ctx.config.transcript
        return {"backend": cfg.backend, "whisper_model": cfg.whisper_model, "language": cfg.language}

    def input_files(self, ctx: VideoContext) -> list[Path]:
        files = [ctx.path(layout.MEDIA_JSON)]
        media = self._media(ctx)
        for rel in [*(media.get("captions") or {}).values(), media.get("audio")]:
            if rel:
                files.append(ctx.path(rel))
        if ctx.config.transcript.whisper_model and Path(ctx.config.transcript.whisper_model).is_file():
            files.append(Path(ctx.config.transcript.whisper_model))
        return files

    @staticmethod
    def _media(ctx: VideoContext) -> dict:
        path = ctx.path(layout.MEDIA_JSON)
        try:
            return read_json(path) if path.is_file() else {}
        except ValueError:
            return {}

    def run(self, ctx: VideoContext) -> StageOutcome:
        # a failed attempt must not leave an earlier attempt's transcript.json for annotate to read as current
        try:
            outcome = self._transcribe(ctx)
        except BaseException:
            ctx.path(layout.TRANSCRIPT_JSON).unlink(missing_ok=True)
            raise
        if outcome.status == "failed":
            ctx.path(layout.TRANSCRIPT_JSON).unlink(missing_ok=True)
        return outcome

    def _transcribe(self, ctx: VideoContext) -> StageOutcome:
        cfg = ctx.config.transcript
        media = self._media(ctx)
        if not media:
            return StageOutcome.failed(self.name, f"{ctx.video.id}: {layout.MEDIA_JSON} missing or unreadable",
                                       "MissingInput")
        captions = media.get("captions") or {}
        transcript: Transcript | None = None
        if cfg.backend in ("auto", "captions"):
            for kind in ("manual", "auto"):
                rel = captions.get(kind)
                if not rel:
                    continue
                try:
                    transcript = parse_vtt(ctx.path(rel), ctx.video.id, source=f"captions:{kind}", language=cfg.language)
                except Exception as exc:
                    return StageOutcome.failed(self.name, f"{ctx.video.id}: cannot parse {kind} captions {rel}: {exc}",
                                               "CaptionParseError")
                if transcript.segments:
                    break
                transcript = None  # an empty caption file: fall through to the next option
        if transcript is None and cfg.backend == "captions":
            return StageOutcome.failed(self.name, f"{ctx.video.id}: no captions (transcript.backend=captions)",
                                       "NoCaptions")
        if transcript is None:
            if not cfg.whisper_model:
                return StageOutcome.failed(
                    self.name, "no captions and no ASR model configured (transcript.whisper_model)", "NoTranscript")
            if not media.get("audio"):
                return StageOutcome.failed(self.name, f"{ctx.video.id}: no captions and no audio track to transcribe",
                                           "NoAudio")
            try:
                transcript = self._asr(ctx, media["audio"])
            except Exception as exc:
                return StageOutcome.failed(self.name, f"{ctx.video.id}: ASR with {cfg.whisper_model!r} failed: {exc}",
                                           type(exc).__name__)
        atomic_write_json(ctx.path(layout.TRANSCRIPT_JSON), to_dict(transcript))
        words = transcript.words()
        outcome = StageOutcome.done(transcript=layout.TRANSCRIPT_JSON, source=transcript.source,
                                    segments=len(transcript.segments), words=len(words))
        if not words:
            outcome.note = "transcript has no words"
        return outcome

    def _asr(self, ctx: VideoContext, audio_rel: str) -> Transcript:
        cfg = ctx.config.transcript
        backend = "faster-whisper" if cfg.backend == "faster-whisper" else "whisper"
        audio = ctx.path(audio_rel)
        st = audio.stat()
        cache = ctx.path(TRANSCRIPT_CACHE_DIR,
                         f"{backend}_{safe_name(_model_label(cfg.whisper_model))}_{safe_name(cfg.language or 'auto')}.json")
        stamp = {"audio": audio_rel, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "model": cfg.whisper_model}
        checkpoint = Path(cfg.whisper_model)
        if checkpoint.is_file():  # a checkpoint file retrained in place is another model
            cst = checkpoint.stat()
            stamp["model_file"] = [cst.st_size, cst.st_mtime_ns]
        if cache.is_file():
            cached = read_json(cache)
            if cached.get("input") == stamp:
                return from_dict(Transcript, cached["transcript"])
        run = transcribe_faster_whisper if backend == "faster-whisper" else transcribe_whisper
        transcript = run(audio, cfg.whisper_model, device=cfg.device, language=cfg.language, video_id=ctx.video.id)
        atomic_write_json(cache, {"input": stamp, "transcript": to_dict(transcript)})
        return transcript
