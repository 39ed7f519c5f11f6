"""Write the real-game fixture corpus: videos, auto captions, GeoGuessr API answers, truth.json.

Layout of `out_dir` (what `collect.demo.server.DemoServer` serves to yt-dlp and the
GeoGuessr client on 127.0.0.1):

    videos.json                  [{id, title, description, upload_date, duration, channel}]
    media/<id>.mp4               H.264 + AAC (music or silence), frames JPEG-compressed first
    media/<id>.en.vtt            YouTube auto captions: no punctuation, per-word timing, [Music]
    api/challenge_<token>.json   GET /api/v3/challenges/<token>
    api/rounds_<token>.json      GET /api/v3/results/highscores/<token> (the streamer's game
                                 is the second item: a leaderboard is not ordered for us)
    truth.json                   README "truth.json" format + style/width/height/fps per video

Every screen change falls on a 0.2 s grid (frames are drawn at 5 Hz and ffmpeg's fps filter
repeats them to 25/30/60 fps), so `guess_s` is exactly the first result frame at any rate.
Rounds are short (a few seconds) except the ones designed to pass the paper's filters,
which need ≥ 100 pre-reveal words; the fast talk (~6.7 words/s) keeps those near 20 s.
Same code → same files (fixed seeds); `CORPUS_VERSION` names the design for caches.
"""
from __future__ import annotations

import io
import json
import math
import os
import random
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from realgame import render
from realgame.places import CHAT_LINES, FILLERS, PLACES, Place

TICK_S = 0.2  # every screen change happens on this grid
RENDER_FPS = 5
WORD_S = 0.14  # a fast commentator, as auto captions time them
SENTENCE_PAUSE_S = 0.2
PAN_TICKS = 5  # the camera pans for 1 s between clues
RESULT_TICKS = 25  # 5 s on each result screen
INTRO_TICKS, SPONSOR_TICKS, SUMMARY_TICKS = 15, 20, 15
JPEG_QUALITY = 30  # blocky, like a re-encoded stream
QP = 32  # constant quantiser: heavy compression, no rate-control work
SCORE_SCALE_KM = 1492.7  # world map: points = 5000·exp(−d/1492.7)
MIN_POINTS, MIN_WORDS, MIN_TIME_LIMIT_S = 3400, 100, 30  # the paper's filters (README)
CORPUS_VERSION = "realgame-1"


@dataclass(frozen=True)
class RoundSpec:
    place: str
    gameplay_s: float
    guess_km: float | None  # None: the round timed out without a guess


@dataclass(frozen=True)
class VideoSpec:
    id: str
    style: str
    size: tuple[int, int]
    fps: int
    sep: str  # thousands separator on screen
    unit: str  # "km" | "miles"
    facecam: str  # corner
    audio: str  # "music" | "silent"
    time_limit: int
    map_name: str
    sponsor_after: int  # the sponsor read follows this round's result screen (0: the intro)
    rounds: tuple[RoundSpec, ...]
    upload_date: str


CHANNEL = "PlonkWithPia"
VIDEOS = (
    VideoSpec("qT4x9LmZ0aB", "classic", (854, 480), 60, ",", "km", "bottom-left", "music", 0, "A Diverse World", 3, (
        RoundSpec("tromso", 23.0, 0.62),  # 4998, kept
        RoundSpec("curitiba", 5.0, 2105.0),  # 1220: points
        RoundSpec("perth", 5.0, None),  # timed out: 0 points
        RoundSpec("osaka", 5.0, 148.0),  # 4528 but few words
        RoundSpec("tartu", 23.0, 331.0),  # 4006, kept
    ), "20240312"),
    VideoSpec("Hn2_Vw8kR3c", "neon", (1280, 720), 30, ".", "miles", "top-left", "silent", 120, "World", 2, (
        RoundSpec("cusco", 5.0, 40.2),  # 4867 but few words
        RoundSpec("nairobi", 23.0, 515.0),  # 3541, kept (just above 3400)
        RoundSpec("kaunas", 5.0, 2250.0),  # 1107, shown as 1.398 miles
        RoundSpec("calgary", 5.0, None),  # timed out
        RoundSpec("izmir", 6.0, 72.4),  # 4763 but few words
    ), "20240603"),
    VideoSpec("pZ7-dE1sYq0", "classic", (1920, 1080), 25, "", "km", "bottom-right", "music", 90, "An Arbitrary World", 0, (
        RoundSpec("bogota", 5.0, 880.0),  # 2773
        RoundSpec("tucson", 23.0, 12.3),  # 4959, kept
        RoundSpec("perth", 5.0, None),  # timed out
        RoundSpec("curitiba", 5.0, 1204.0),  # 2232
        RoundSpec("kaunas", 6.0, 600.0),  # 3345: just under 3400
    ), "20241120"),
)

OPENERS = ("okay round {n} here we go", "alright next round", "let's see where we are now",
           "okay round {n}", "here we go again")
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five")


def points_for(km: float | None) -> int:
    if km is None:
        return 0
    return min(5000, int(round(5000 * math.exp(-km / SCORE_SCALE_KM))))


# --------------------------------------------------------------------------- talk
@dataclass
class Word:
    text: str
    start: float
    end: float


def _speak(sentences: list[str], t: float, limit: float, words: list[Word], required: int = 0) -> float:
    """Say sentences from t on; the first `required` always, the rest while they fit before limit."""
    for i, sentence in enumerate(sentences):
        tokens = sentence.split()
        if i >= required and t + len(tokens) * WORD_S > limit:
            continue  # a shorter sentence may still fit
        for tok in tokens:
            words.append(Word(tok, round(t, 3), round(t + WORD_S * 0.9, 3)))
            t += WORD_S
        t += SENTENCE_PAUSE_S
    return t


def vtt_time(t: float) -> str:
    ms = int(round(t * 1000))
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def auto_captions(words: list[Word]) -> str:
    """YouTube's auto-caption WebVTT: rolling two-line cues, `<t><c> word</c>` timing tags, [Music]."""
    lines: list[list[Word]] = []
    for w in words:
        if (not lines or w.text.startswith("[") or lines[-1][0].text.startswith("[") or len(lines[-1]) >= 8
                or w.start - lines[-1][-1].end > 1.5):
            lines.append([w])
        else:
            lines[-1].append(w)
    cues, above = ["WEBVTT\nKind: captions\nLanguage: en\n"], ""
    for i, line in enumerate(lines):
        start = line[0].start
        end = min(lines[i + 1][0].start if i + 1 < len(lines) else line[-1].end + 1.0, line[-1].end + 2.0)
        if line[0].text.startswith("["):
            cues.append(f"{vtt_time(start)} --> {vtt_time(end)} align:start position:0%\n{line[0].text}\n")
            above = ""
            continue
        timed = line[0].text + "".join(f"<{vtt_time(w.start)}><c> {w.text}</c>" for w in line[1:])
        hold = end - 0.01
        cues.append(f"{vtt_time(start)} --> {vtt_time(hold)} align:start position:0%\n{above or ' '}\n{timed}\n")
        plain = " ".join(w.text for w in line)
        cues.append(f"{vtt_time(hold)} --> {vtt_time(end)} align:start position:0%\n{plain}\n \n")
        above = plain
    return "\n".join(cues)


# --------------------------------------------------------------------------- timeline
@dataclass
class RoundPlan:
    k: int
    spec: RoundSpec
    place: Place
    start_t: int  # ticks
    guess_t: int
    end_t: int
    points: int
    shown_distance: str | None
    guess_latlng: tuple[float, float] | None
    stops: list[tuple[int, int]]  # (first tick, view offset px)
    clue_times: list[list]
    pre_words: int
    kept: bool
    drop_reasons: list[str]


def _guess_point(place: Place, km: float, rng: random.Random) -> tuple[float, float]:
    from geopy.distance import distance

    p = distance(kilometers=km).destination((place.lat, place.lng), rng.uniform(0, 360))
    return round(p.latitude, 6), round(p.longitude, 6)


def _plan_round(k: int, spec: RoundSpec, start_t: int, width: int, rng: random.Random, words: list[Word],
                time_limit: int) -> RoundPlan:
    place = PLACES[spec.place]
    game_t = int(round(spec.gameplay_s / TICK_S))
    clues = list(place.clues) if spec.gameplay_s >= 12 else list(place.clues[:1])
    n = len(clues)
    stop_t = (game_t - PAN_TICKS * (n - 1)) // n
    offsets = [int(2 * width * j / (n - 1)) for j in range(n)] if n > 1 else [width]
    stops = [(start_t + j * (stop_t + PAN_TICKS), off) for j, off in enumerate(offsets)]
    guess_t = start_t + game_t
    first_word = len(words)
    clue_times = []
    for j, (tick, _) in enumerate(stops):
        a = tick * TICK_S + 0.3
        b = (stops[j + 1][0] if j + 1 < n else guess_t) * TICK_S - 0.3
        said = []
        if j == 0:
            said.append(rng.choice(OPENERS).format(n=NUMBER_WORDS[k]))
        said.append(clues[j][1])
        tail = [place.conclusion, "okay let's lock it in"] if j == n - 1 else []
        fill = list(FILLERS)
        rng.shuffle(fill)
        before = len(words)
        t = _speak(said, a, b, words, required=len(said))
        phrase = clues[j][1].split()
        clue_words = words[before + (len(said[0].split()) if j == 0 else 0):][:len(phrase)]
        clue_times.append([round((clue_words[0].start + clue_words[-1].end) / 2, 3), clues[j][1]])
        # fillers while they fit, then the conclusion closes the last stop
        reserve = sum(len(s.split()) for s in tail) * WORD_S + SENTENCE_PAUSE_S * len(tail)
        t = _speak(fill, t, b - reserve, words)
        _speak(tail, t, b, words, required=len(tail))
    if spec.guess_km is not None and rng.random() < 0.5:  # a music sting under the pan
        words.append(Word("[Music]", round(stops[-1][0] * TICK_S - 0.6, 3), round(stops[-1][0] * TICK_S, 3)))
    pre_words = sum(1 for w in words[first_word:] if not w.text.startswith("["))
    points = points_for(spec.guess_km)
    end_t = guess_t + RESULT_TICKS
    # reveal talk: strictly after the result screen appears
    if spec.guess_km is None:
        reveal = ["oh no i ran out of time on that one", "that is zero points"]
    elif points >= 4500:
        reveal = [f"yes it was {place.city}", f"{points} points let's go"]
    else:
        reveal = [f"oh it was {place.city} in {place.country.lower()}", f"only {points} points"]
    _speak(reveal, guess_t * TICK_S + 0.6, end_t * TICK_S - 0.3, words)
    reasons = []
    if points < MIN_POINTS:
        reasons.append(f"points < {MIN_POINTS}")
    if pre_words < MIN_WORDS:
        reasons.append(f"pre-reveal words < {MIN_WORDS}")
    if time_limit and time_limit < MIN_TIME_LIMIT_S:
        reasons.append(f"time limit < {MIN_TIME_LIMIT_S} s")
    guess = _guess_point(place, spec.guess_km, rng) if spec.guess_km is not None else None
    # design margins: a boundary off by a second (~7 words) must not flip the word filter
    if not (pre_words >= MIN_WORDS + 15 or pre_words <= MIN_WORDS - 40):
        raise RuntimeError(f"fixture design: round {k} ({spec.place}) has {pre_words} pre-reveal words, "
                           f"too close to the {MIN_WORDS}-word filter")
    return RoundPlan(k, spec, place, start_t, guess_t, end_t, points,
                     None if spec.guess_km is None else "", guess, stops, clue_times, pre_words, not reasons, reasons)


# --------------------------------------------------------------------------- frames
class FrameMaker:
    """JPEG bytes for each 0.2 s tick of one video (identical screens are encoded once)."""

    def __init__(self, spec: VideoSpec, plans: list[RoundPlan], timeline: list[tuple[str, int, int, object]]):
        self.spec, self.plans, self.timeline = spec, plans, timeline
        self.style = render.STYLES[spec.style]
        self.W, self.H = spec.size
        self.cache: dict[tuple, bytes] = {}
        self.cam = render.facecam(self.W, self.H, spec.facecam)
        self.minimap = render.minimap(self.style, self.W, self.H)
        self.panos: dict[int, object] = {}
        self.screens: dict[tuple, Image.Image] = {}

    def _chat(self, tick: int):
        state = tick // 12  # a new message every 2.4 s
        lines = [CHAT_LINES[(state + i) % len(CHAT_LINES)] for i in range(4)]
        return state, render.chat(self.style, self.W, self.H, lines)

    def _jpeg(self, img: Image.Image) -> bytes:
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=JPEG_QUALITY)
        return buf.getvalue()

    def _overlay(self, img: Image.Image, tick: int, with_chat: bool = True) -> Image.Image:
        if with_chat:
            _, (patch, pos) = self._chat(tick)
            img.paste(patch, pos, patch)
        cam, pos = self.cam
        img.paste(cam, pos)
        return img

    def _score_before(self, k: int) -> int:
        return sum(p.points for p in self.plans if p.k < k)

    def _hud(self, k: int, score: int):
        return render.status_bar(self.style, self.W, self.H, self.spec.map_name, k, len(self.plans), score,
                                 self.spec.sep)

    def frame(self, tick: int) -> bytes:
        kind, first, last, item = next(seg for seg in self.timeline if seg[1] <= tick < seg[2])
        chat_state = tick // 12
        if kind == "play":
            plan: RoundPlan = item
            j = max(i for i, (s, _) in enumerate(plan.stops) if s <= tick)
            off = plan.stops[j][1]
            nxt = plan.stops[j + 1] if j + 1 < len(plan.stops) else None
            if nxt and tick > nxt[0] - PAN_TICKS:  # panning to the next clue
                a = (tick - (nxt[0] - PAN_TICKS)) / PAN_TICKS
                off = int(off + a * (nxt[1] - off))
            key = ("play", plan.k, off, chat_state)
            if key not in self.cache:
                if plan.k not in self.panos:
                    xs = [o + self.W // 2 for _, o in plan.stops]
                    self.panos = {plan.k: render.panorama(plan.place, self.W, self.H, xs,
                                                          f"{self.spec.id}:{plan.k}")}
                img = Image.fromarray(self.panos[plan.k][:, off:off + self.W])
                hud, pos = self._hud(plan.k, self._score_before(plan.k))
                img.paste(hud, pos, hud)
                mm, pos = self.minimap
                img.paste(mm, pos, mm)
                self.cache[key] = self._jpeg(self._overlay(img, tick))
            return self.cache[key]
        key = (kind, getattr(item, "k", None), chat_state if kind in ("result", "summary") else None)
        if key not in self.cache:
            img = self._screen(kind, item).copy()
            self.cache[key] = self._jpeg(self._overlay(img, tick, with_chat=kind in ("result", "summary")))
        return self.cache[key]

    def _screen(self, kind: str, item) -> Image.Image:
        key = (kind, getattr(item, "k", None))
        if key in self.screens:
            return self.screens[key]
        s, W, H = self.style, self.W, self.H
        if kind == "intro":
            img = render.intro_card(s, W, H, CHANNEL, self.spec.map_name)
        elif kind == "sponsor":
            img = render.sponsor_card(s, W, H)
        elif kind == "summary":
            img = render.summary_screen(s, W, H, round_points=[p.points for p in self.plans], sep=self.spec.sep,
                                        pins=[(p.place.lat, p.place.lng) for p in self.plans], seed=self.spec.id)
        else:
            plan: RoundPlan = item
            img = render.result_screen(s, W, H, points=plan.points, distance=plan.shown_distance,
                                       true_latlng=(plan.place.lat, plan.place.lng), guess_latlng=plan.guess_latlng,
                                       last=plan.k == len(self.plans), sep=self.spec.sep,
                                       seed=f"{self.spec.id}:{plan.k}")
            if s.hud_on_result:
                hud, pos = self._hud(plan.k, self._score_before(plan.k) + plan.points)
                img.paste(hud, pos, hud)
        self.screens = {key: img}  # one screen at a time is all the timeline needs
        return img


def _encode(frames, spec: VideoSpec, n_ticks: int, target: Path) -> None:
    from imageio_ffmpeg import get_ffmpeg_exe

    duration = n_ticks * TICK_S
    audio = ("anullsrc=r=22050:cl=mono" if spec.audio == "silent" else
             "aevalsrc=0.05*sin(2*PI*220*t)*(0.6+0.4*sin(2*PI*2*t))+0.03*sin(2*PI*330*t):s=22050")
    tmp = target.with_name(f".{target.name}.tmp")
    cmd = [get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
           "-f", "image2pipe", "-c:v", "mjpeg", "-framerate", str(RENDER_FPS), "-i", "pipe:0",
           "-f", "lavfi", "-t", f"{duration:.3f}", "-i", audio,
           "-map", "0:v", "-map", "1:a",
           # range/format conversion at 5 Hz, then repeat frames up to the target rate
           "-vf", f"scale=in_range=pc:out_range=tv,format=yuv420p,fps={spec.fps}",
           # one x264 thread: less CPU in all (videos are encoded side by side instead)
           "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-qp", str(QP),
           "-x264-params", "threads=1", "-g", str(2 * spec.fps),
           "-c:a", "aac", "-b:a", "32k", "-t", f"{duration:.3f}", "-movflags", "+faststart", "-f", "mp4", str(tmp)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for data in frames:
            proc.stdin.write(data)
        proc.stdin.close()
    except BrokenPipeError:
        pass
    err = proc.stderr.read().decode("utf-8", "replace")
    if proc.wait() != 0:
        raise RuntimeError(f"ffmpeg failed to encode {target.name}: {err.strip()[-400:]}")
    os.replace(tmp, target)


# --------------------------------------------------------------------------- API payloads
def _payloads(spec: VideoSpec, token: str, plans: list[RoundPlan], rng: random.Random) -> tuple[dict, dict]:
    creator_id = "".join(rng.choice("0123456789abcdef") for _ in range(24))
    map_slug = "".join(rng.choice("0123456789abcdef") for _ in range(24))
    challenge = {
        "challenge": {"token": token, "mapSlug": map_slug, "roundCount": len(plans), "timeLimit": spec.time_limit,
                      "forbidMoving": True, "forbidZooming": False, "forbidRotating": False,
                      "numberOfParticipants": 312, "gameMode": "standard", "challengeType": 0,
                      "streakType": "countrystreak", "accessLevel": 1},
        "map": {"id": map_slug, "name": spec.map_name, "slug": map_slug, "description": None,
                "url": f"/maps/{map_slug}", "playUrl": f"/{map_slug}/play", "published": True, "banned": False,
                "bounds": {"min": {"lat": -55.0, "lng": -170.0}, "max": {"lat": 72.0, "lng": 178.0}},
                "panoramaProvider": "StreetView", "maxErrorDistance": 18700000, "likes": 4021},
        "creator": {"nick": CHANNEL, "id": creator_id, "isProUser": True, "type": "Pro", "countryCode": "se",
                    "url": f"/user/{creator_id}"},
    }
    rounds = [{"lat": p.place.lat, "lng": p.place.lng,
               "panoId": "".join(rng.choice("0123456789ABCDEF") for _ in range(44)),
               "heading": round(rng.uniform(0, 360), 3), "pitch": round(rng.uniform(-4, 4), 3), "zoom": 0,
               "streakLocationCode": p.place.country_code.lower(), "startTime": None} for p in plans]

    def game(nick: str, pid: str, guesses: list[dict]) -> dict:
        total = sum(g["roundScoreInPoints"] for g in guesses)
        return {"gameId": "".join(rng.choice("0123456789abcdefABCDEF") for _ in range(16)), "playerName": nick,
                "userId": pid, "totalScore": total, "isLeader": False,
                "game": {"token": "".join(rng.choice("0123456789abcdefABCDEF") for _ in range(16)),
                         "type": "challenge", "mode": "standard", "state": "finished", "roundCount": len(plans),
                         "timeLimit": spec.time_limit, "forbidMoving": True, "map": map_slug,
                         "mapName": spec.map_name, "round": len(plans), "rounds": rounds,
                         "player": {"id": pid, "nick": nick, "guesses": guesses,
                                    "totalScore": {"amount": f"{total:,}", "unit": "points"}}}}

    def guess(p: RoundPlan, km: float | None, latlng, points: int, time_s: int) -> dict:
        if km is None:
            return {"lat": 0.0, "lng": 0.0, "timedOut": True, "timedOutWithGuess": False, "skippedRound": False,
                    "roundScore": {"amount": "0", "unit": "points", "percentage": 0},
                    "roundScoreInPercentage": 0, "roundScoreInPoints": 0,
                    "distance": {"meters": {"amount": "0", "unit": "m"}, "miles": {"amount": "0", "unit": "miles"}},
                    "distanceInMeters": 0, "stepsCount": 0, "time": spec.time_limit or time_s}
        return {"lat": latlng[0], "lng": latlng[1], "timedOut": False, "timedOutWithGuess": False,
                "skippedRound": False,
                "roundScore": {"amount": f"{points:,}", "unit": "points", "percentage": round(points / 50, 2)},
                "roundScoreInPercentage": round(points / 50, 2), "roundScoreInPoints": points,
                "distance": {"meters": {"amount": f"{km:.1f}", "unit": "km"},
                             "miles": {"amount": f"{km / 1.609344:.1f}", "unit": "miles"}},
                "distanceInMeters": round(km * 1000, 1), "stepsCount": 0, "time": time_s}

    mine = [guess(p, p.spec.guess_km, p.guess_latlng, p.points, int(p.spec.gameplay_s)) for p in plans]
    leader = []
    for p in plans:
        km = max(0.05, (p.spec.guess_km or 900.0) * 0.3)
        leader.append(guess(p, km, _guess_point(p.place, km, rng), points_for(km), 40))
    leader_item = game("globetrotter_x", "".join(rng.choice("0123456789abcdef") for _ in range(24)), leader)
    leader_item["isLeader"] = True
    highscores = {"items": [leader_item, game(CHANNEL, creator_id, mine)], "paginationToken": None}
    return challenge, highscores


# --------------------------------------------------------------------------- entry point
def _write_json(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=1, ensure_ascii=False), "utf-8")
    os.replace(tmp, path)


def generate_video(spec: VideoSpec, out: Path) -> tuple[dict, dict]:
    """Render one video, its captions and API answers; return (videos.json entry, truth entry)."""
    rng = random.Random(f"{CORPUS_VERSION}:{spec.id}")
    token = "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789") for _ in range(16))
    W, _ = spec.size
    words: list[Word] = [Word("[Music]", 0.0, 0.8)]
    _speak([f"hey everyone welcome back today we are playing {spec.map_name.lower()}"],
           1.0, INTRO_TICKS * TICK_S - 0.2, words, required=1)
    timeline: list[tuple[str, int, int, object]] = [("intro", 0, INTRO_TICKS, None)]
    tick = INTRO_TICKS

    def sponsor(at: int) -> int:
        timeline.append(("sponsor", at, at + SPONSOR_TICKS, None))
        _speak(["a quick word from today's sponsor saferoute vpn", "three months free with code geo"],
               at * TICK_S + 0.3, (at + SPONSOR_TICKS) * TICK_S - 0.2, words, required=2)
        return at + SPONSOR_TICKS

    if spec.sponsor_after == 0:
        tick = sponsor(tick)
    plans: list[RoundPlan] = []
    for k, rs in enumerate(spec.rounds, start=1):
        plan = _plan_round(k, rs, tick, W, rng, words, spec.time_limit)
        if rs.guess_km is not None:
            plan.shown_distance = render.distance_text(rs.guess_km, spec.unit, spec.sep)
        plans.append(plan)
        timeline.append(("play", plan.start_t, plan.guess_t, plan))
        timeline.append(("result", plan.guess_t, plan.end_t, plan))
        tick = plan.end_t
        if spec.sponsor_after == k:
            tick = sponsor(tick)
    timeline.append(("summary", tick, tick + SUMMARY_TICKS, None))
    _speak(["and that is the game", "thanks for watching see you next time"], tick * TICK_S + 0.4,
           (tick + SUMMARY_TICKS) * TICK_S - 0.2, words)
    n_ticks = tick + SUMMARY_TICKS
    words.sort(key=lambda w: w.start)

    maker = FrameMaker(spec, plans, timeline)
    _encode((maker.frame(t) for t in range(n_ticks)), spec, n_ticks, out / "media" / f"{spec.id}.mp4")
    vtt = out / "media" / f"{spec.id}.en.vtt"
    vtt.write_text(auto_captions(words), "utf-8")

    challenge, highscores = _payloads(spec, token, plans, rng)
    _write_json(out / "api" / f"challenge_{token}.json", challenge)
    _write_json(out / "api" / f"rounds_{token}.json", highscores)
    duration = round(n_ticks * TICK_S, 3)
    title = f"I played {spec.map_name} with NO MOVING | GeoGuessr play along"
    description = (f"Play the challenge yourself: https://www.geoguessr.com/challenge/{token}\n"
                   "Sponsored by SafeRoute VPN\n#geoguessr")
    entry = {"id": spec.id, "title": title, "description": description, "upload_date": spec.upload_date,
             "duration": duration, "channel": CHANNEL}
    truth = {
        "id": spec.id, "page": f"watch/{spec.id}", "token": token, "duration_s": duration,
        "style": spec.style, "width": spec.size[0], "height": spec.size[1], "fps": spec.fps,
        "rounds": [{
            "round": p.k, "start_s": round(p.start_t * TICK_S, 3), "guess_s": round(p.guess_t * TICK_S, 3),
            "end_s": round(p.end_t * TICK_S, 3), "points": p.points, "distance_km": p.spec.guess_km,
            "lat": p.place.lat, "lng": p.place.lng, "country": p.place.country, "city": p.place.city,
            "clue_times": p.clue_times, "kept": p.kept,
            "shown_distance": p.shown_distance, "timed_out": p.spec.guess_km is None,
            "pre_reveal_words": p.pre_words, "drop_reasons": p.drop_reasons,
        } for p in plans],
    }
    return entry, truth


def generate_corpus(out_dir: Path | str, videos: tuple[VideoSpec, ...] = VIDEOS, workers: int = 2) -> dict:
    """Write the corpus (layout in the module docstring) and return its truth.json content.

    Videos are rendered in `workers` processes (each one Python renderer + one x264 thread)."""
    out = Path(out_dir)
    (out / "media").mkdir(parents=True, exist_ok=True)
    (out / "api").mkdir(parents=True, exist_ok=True)
    if workers > 1 and len(videos) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(workers, len(videos))) as pool:
            results = list(pool.map(generate_video, videos, [out] * len(videos)))
    else:
        results = [generate_video(spec, out) for spec in videos]
    entries = [entry for entry, _ in results]
    truths = [truth for _, truth in results]
    truth = {"generator": {"name": "tests/realgame", "version": CORPUS_VERSION}, "videos": truths}
    _write_json(out / "videos.json", entries)
    _write_json(out / "truth.json", truth)
    return truth


def generate_cached(cache_root: Path, videos: tuple[VideoSpec, ...] = VIDEOS) -> Path:
    """The corpus under cache_root/<hash of this package's source>, generated once (atomic rename)."""
    import hashlib

    here = Path(__file__).parent
    digest = hashlib.sha256()
    for path in sorted(here.glob("*.py")):
        digest.update(path.read_bytes())
    digest.update(repr(videos).encode())
    target = Path(cache_root) / digest.hexdigest()[:16]
    if (target / "truth.json").is_file():
        return target
    Path(cache_root).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".realgame-", dir=cache_root))
    generate_corpus(work, videos)
    import shutil

    try:
        os.replace(work, target)
    except OSError:  # another process finished first: use theirs
        shutil.rmtree(work, ignore_errors=True)
    for old in Path(cache_root).iterdir():  # corpora of earlier versions of this code
        if old.is_dir() and old != target and not old.name.startswith("."):
            shutil.rmtree(old, ignore_errors=True)
    return target


if __name__ == "__main__":
    import sys

    for v in generate_corpus(Path(sys.argv[1]))["videos"]:
        print(v["id"], v["style"], f"{v['width']}x{v['height']}@{v['fps']}", v["duration_s"], "s",
              [(r["round"], r["points"], r["pre_reveal_words"], r["kept"]) for r in v["rounds"]])
