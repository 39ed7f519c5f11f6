"""Write word-timed captions in YouTube's auto-caption WebVTT dialect.

YouTube's automatic captions (what yt-dlp saves as `<id>.en.vtt`) look like:

    WEBVTT
    Kind: captions
    Language: en

    00:00:01.000 --> 00:00:03.510 align:start position:0%
    <previous line, plain>
    first<00:00:01.420><c> word</c><00:00:01.800><c> timed</c>

    00:00:03.510 --> 00:00:03.520 align:start position:0%
    first word timed
    <blank>

A cue shows the previous line (plain) above the line being spoken (each word but the
first tagged with its start time), followed by a 10 ms cue holding the finished line:
the "rolling two-line" duplication that caption parsers must de-duplicate. Sound tags
such as `[Music]` are cues of their own without word timing.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SpokenWord:
    text: str
    start: float
    end: float


def vtt_time(seconds: float) -> str:
    ms = int(round(max(0.0, seconds) * 1000))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def caption_lines(words: list[SpokenWord], max_words: int = 7, max_gap: float = 1.2) -> list[list[SpokenWord]]:
    """Group words into caption lines; a sound tag (`[Music]`) is a line of its own."""
    lines: list[list[SpokenWord]] = []
    for word in words:
        tag = word.text.startswith("[")
        last = lines[-1] if lines else None
        if (last is None or tag or last[-1].text.startswith("[") or len(last) >= max_words
                or word.start - last[-1].end > max_gap):
            lines.append([word])
        else:
            last.append(word)
    return lines


def youtube_auto_vtt(words: list[SpokenWord], language: str = "en") -> str:
    out = [f"WEBVTT\nKind: captions\nLanguage: {language}\n"]
    previous = " "
    lines = caption_lines(words)
    for i, line in enumerate(lines):
        start = line[0].start
        next_start = lines[i + 1][0].start if i + 1 < len(lines) else line[-1].end + 0.5
        end = max(start + 0.02, min(next_start, line[-1].end + 1.5))
        if line[0].text.startswith("["):
            out.append(f"{vtt_time(start)} --> {vtt_time(end)} align:start position:0%\n{line[0].text}\n")
            previous = " "
            continue
        spoken = line[0].text + "".join(f"<{vtt_time(w.start)}><c> {w.text}</c>" for w in line[1:])
        hold = max(start + 0.01, end - 0.01)
        out.append(f"{vtt_time(start)} --> {vtt_time(hold)} align:start position:0%\n{previous}\n{spoken}\n")
        plain = " ".join(w.text for w in line)
        out.append(f"{vtt_time(hold)} --> {vtt_time(end)} align:start position:0%\n{plain}\n \n")
        previous = plain
    return "\n".join(out)
