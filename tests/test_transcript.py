"""Transcript stage: YouTube auto-caption VTT (word timing tags, rolling duplicates), manual
captions, a tiny random Whisper checkpoint loaded by path, and the no-transcript error."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import imageio_ffmpeg
import pytest

from collect import layout
from collect.config import load_config
from naviclues.fsutil import atomic_write_json, read_json
from collect.records import Transcript, Video, from_dict
from collect.stages.base import VideoContext
from collect.stages.transcript import TRANSCRIPT_CACHE_DIR, TranscriptStage, parse_vtt

# YouTube's automatic-caption layout: every new line carries per-word times, the next cue
# repeats it (10 ms "transition" cue, then above the following line).
AUTO_VTT = """WEBVTT
Kind: captions
Language: en

00:00:00.160 --> 00:00:02.350 align:start position:0%
 
so<00:00:00.480><c> this</c><00:00:00.960><c> is</c><00:00:01.200><c> Brazil</c>

00:00:02.350 --> 00:00:02.360 align:start position:0%
so this is Brazil
 

00:00:02.360 --> 00:00:04.790 align:start position:0%
so this is Brazil
look<00:00:02.880><c> at</c><00:00:03.040><c> the</c><00:00:03.300><c> bollards&amp;poles</c>

00:00:04.790 --> 00:00:04.800 align:start position:0%
look at the bollards&amp;poles
 

00:00:04.800 --> 00:00:06.000 align:start position:0%
look at the bollards&amp;poles
yeah
"""

MANUAL_VTT = """WEBVTT

00:00:01.000 --> 00:00:03.000
<v Rainbolt>This is Chile.

00:00:03.000 --> 00:00:05.500
The poles give it away.
"""


def test_auto_captions_word_times_and_dedup(tmp_path):
    path = tmp_path / "a.en.vtt"
    path.write_text(AUTO_VTT)
    transcript = parse_vtt(path, "vid")
    assert transcript.source == "captions:auto" and transcript.video_id == "vid"
    words = [(w.text, w.start, w.end) for w in transcript.words()]
    assert words == [
        ("so", 0.16, 0.48), ("this", 0.48, 0.96), ("is", 0.96, 1.2), ("Brazil", 1.2, 2.35),
        ("look", 2.36, 2.88), ("at", 2.88, 3.04), ("the", 3.04, 3.3), ("bollards&poles", 3.3, 4.79),
        ("yeah", 4.8, 6.0),
    ]
    assert [s.text for s in transcript.segments] == ["so this is Brazil", "look at the bollards&poles", "yeah"]
    assert transcript.text_between(2.0, 3.1) == "look at the"


def test_manual_captions_one_segment_per_cue(tmp_path):
    path = tmp_path / "m.en.vtt"
    path.write_text(MANUAL_VTT)
    transcript = parse_vtt(path)
    assert transcript.source == "captions:manual"
    assert [(s.start, s.end, s.text) for s in transcript.segments] == [
        (1.0, 3.0, "This is Chile."), (3.0, 5.5, "The poles give it away.")]
    words = transcript.segments[1].words
    assert [w.text for w in words] == ["The", "poles", "give", "it", "away."]
    assert words[0].start == 3.0 and words[-1].end == 5.5
    assert all(a.end == pytest.approx(b.start, abs=1e-3) for a, b in zip(words, words[1:]))


def _ctx(tmp_path: Path, media: dict | None, **transcript_cfg) -> VideoContext:
    cfg = load_config(overrides={"transcript": transcript_cfg}, env={})
    ctx = VideoContext(video=Video(id="vid/../1", url="http://x"), out_dir=tmp_path / "out", config=cfg)
    if media is not None:
        atomic_write_json(ctx.path(layout.MEDIA_JSON), media)
    return ctx


def test_stage_prefers_manual_then_auto_captions(tmp_path):
    ctx = _ctx(tmp_path, {"video": None, "audio": None,
                          "captions": {"manual": "media/video.en.vtt", "auto": "media/video.en-orig.vtt"}})
    ctx.path("media").mkdir()
    ctx.path("media/video.en.vtt").write_text(MANUAL_VTT)
    ctx.path("media/video.en-orig.vtt").write_text(AUTO_VTT)
    outcome = TranscriptStage()(ctx)
    assert outcome.status == "done" and outcome.outputs["source"] == "captions:manual"
    saved = from_dict(Transcript, read_json(ctx.path(layout.TRANSCRIPT_JSON)))
    assert saved.segments[0].text == "This is Chile."
    assert ctx.video_dir.parent == (tmp_path / "out" / "videos").resolve()  # hostile id stays inside


def test_no_captions_and_no_model_is_an_error_record(tmp_path):
    ctx = _ctx(tmp_path, {"video": "media/video.mp4", "audio": "media/video.mp4",
                          "captions": {"manual": None, "auto": None}})
    outcome = TranscriptStage()(ctx)
    assert outcome.status == "failed"
    assert outcome.error.message == "no captions and no ASR model configured (transcript.whisper_model)"
    assert not ctx.path(layout.TRANSCRIPT_JSON).exists()
    missing = TranscriptStage()(_ctx(tmp_path / "other", None))
    assert missing.status == "failed" and "media.json" in missing.error.message


def test_a_failed_rerun_removes_the_earlier_transcript(tmp_path):
    ctx = _ctx(tmp_path, {"video": None, "audio": None, "captions": {"manual": "media/video.en.vtt", "auto": None}})
    ctx.path("media").mkdir()
    ctx.path("media/video.en.vtt").write_text(MANUAL_VTT)
    assert TranscriptStage()(ctx).status == "done" and ctx.path(layout.TRANSCRIPT_JSON).is_file()
    ctx.path("media/video.en.vtt").write_text("this is not WebVTT at all")  # the captions were replaced, badly
    outcome = TranscriptStage()(ctx)
    assert outcome.status == "failed" and outcome.error.type == "CaptionParseError"
    assert "media/video.en.vtt" in outcome.error.message
    assert not ctx.path(layout.TRANSCRIPT_JSON).exists()  # annotate cannot pick up the stale one


@pytest.fixture(scope="module")
def tiny_whisper(tmp_path_factory) -> Path:
    torch = pytest.importorskip("torch")
    whisper_model = pytest.importorskip("whisper.model")
    dims = whisper_model.ModelDimensions(n_mels=80, n_audio_ctx=1500, n_audio_state=64, n_audio_head=2,
                                         n_audio_layer=1, n_vocab=51865, n_text_ctx=448, n_text_state=64,
                                         n_text_head=2, n_text_layer=1)
    from whisper.tokenizer import get_tokenizer

    torch.manual_seed(0)  # fixed random weights → the same decode every run
    model = whisper_model.Whisper(dims)
    # Random weights loop on one token up to the 224-token limit, and whisper then retries at
    # five more temperatures (~30 s). Wire the text decoder as a tiny deterministic bigram
    # instead: after a text token end-of-text wins, after a timestamp a text token wins, so
    # each 30 s window decodes to "<|t|> word <|eot|>" at temperature 0. Encoder and
    # cross-attention (which drive the word-timestamp DTW) stay random.
    tok = get_tokenizer(True, num_languages=model.num_languages, language="en", task="transcribe")
    with torch.no_grad():
        model.decoder.positional_embedding.normal_(0, 0.01)  # Whisper leaves it uninitialised (torch.empty)
        block = model.decoder.blocks[0]
        for layer in (block.attn.out, block.cross_attn.out, block.mlp[2]):
            layer.weight.zero_()
            layer.bias.zero_()
        emb = model.decoder.token_embedding.weight  # tied: input embedding and output projection
        end_dir, text_dir = torch.eye(dims.n_text_state)[:2]
        emb[: tok.eot] += 20 * end_dir + 20 * text_dir
        emb[tok.eot] = 400 * end_dir
        emb[tok.eot + 1: tok.timestamp_begin] += -20 * end_dir - 40 * text_dir
        emb[tok.timestamp_begin:] += -20 * end_dir + 20 * text_dir
    path = tmp_path_factory.mktemp("whisper") / "tiny-random.pt"
    torch.save({"dims": dims.__dict__, "model_state_dict": model.state_dict()}, path)
    return path


def test_tiny_random_whisper_by_path_gives_word_timestamps(tmp_path, tiny_whisper):
    ctx = _ctx(tmp_path, {"video": None, "audio": "media/audio.wav", "captions": {"manual": None, "auto": None}},
               whisper_model=str(tiny_whisper), backend="auto")
    ctx.path("media").mkdir()
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error", "-f", "lavfi",
                    "-i", "sine=frequency=440:duration=3", "-ar", "16000", str(ctx.path("media/audio.wav"))],
                   check=True)
    outcome = TranscriptStage()(ctx)
    assert outcome.status == "done", outcome.error
    transcript = from_dict(Transcript, read_json(ctx.path(layout.TRANSCRIPT_JSON)))
    assert transcript.source == "whisper:tiny-random.pt"  # the file name, never the local path
    assert transcript.language == "en"
    words = transcript.words()
    assert words, "the seeded random model emits at least one word"
    assert all(w.text for w in words)
    for w in words:
        assert 0.0 <= w.start <= w.end <= 3.5  # inside the 3 s clip (whisper rounds to 20 ms frames)
    starts = [w.start for w in words]
    assert starts == sorted(starts)
    assert [s.start for s in transcript.segments] == sorted(s.start for s in transcript.segments)
    cache = list(ctx.path(TRANSCRIPT_CACHE_DIR).glob("whisper_tiny-random.pt_en.json"))
    assert len(cache) == 1

    # rerun: served from the per-(backend, model) cache, identical output
    before = ctx.path(layout.TRANSCRIPT_JSON).read_text()
    again = TranscriptStage()(ctx)
    assert again.status == "done" and ctx.path(layout.TRANSCRIPT_JSON).read_text() == before
    stamped = read_json(cache[0])["input"]
    assert stamped["model_file"] == [tiny_whisper.stat().st_size, tiny_whisper.stat().st_mtime_ns]
    # a checkpoint replaced in place is another model: the cached answer is not reused
    os.utime(tiny_whisper, ns=(tiny_whisper.stat().st_atime_ns, tiny_whisper.stat().st_mtime_ns + 10**9))
    TranscriptStage()(ctx)
    assert read_json(cache[0])["input"]["model_file"][1] == tiny_whisper.stat().st_mtime_ns


def test_captions_backend_without_captions_fails(tmp_path, tiny_whisper):
    ctx = _ctx(tmp_path, {"video": None, "audio": "media/a.wav", "captions": {"manual": None, "auto": None}},
               whisper_model=str(tiny_whisper), backend="captions")
    outcome = TranscriptStage()(ctx)
    assert outcome.status == "failed" and outcome.error.type == "NoCaptions"
