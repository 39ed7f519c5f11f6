"""`pip install "naviclues[navig]"` alone gives a working `navig` without collect's video stack.

A fresh venv gets, besides pip's own resolution of `.[navig]`, only the distributions that the
extra's dependency closure names: each is linked file by file (its RECORD) from the development
venv, and pip installs the project with `--no-index`, so pip itself proves the closure satisfies
the extra's metadata, and the commands below prove navig's code needs nothing outside it. Linking
instead of downloading keeps this offline and a few seconds long (a real index install of torch,
transformers and datasets takes minutes).
"""
from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
VIDEO_STACK = ("yt_dlp", "imageio_ffmpeg", "webvtt", "rapidocr_onnxruntime", "imagehash", "spacy", "whisper")


def _extra_requirements(extra: str) -> list[Requirement]:
    """The project's core requirements plus one extra, its self-references ("naviclues[x]") expanded."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    out = [Requirement(r) for r in project["dependencies"]]
    pending, seen = [extra], set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        for raw in extras[name]:
            req = Requirement(raw)
            if canonicalize_name(req.name) == "naviclues":
                pending.extend(req.extras)
            else:
                out.append(req)
    return out


def _wanted(req: Requirement, extras: set[str]) -> bool:
    if req.marker is None:
        return True
    return any(req.marker.evaluate({"extra": e}) for e in extras | {""})


def dependency_closure(requirements: list[Requirement]) -> dict[str, metadata.Distribution]:
    """Every installed distribution the requirements pull in (markers evaluated, extras followed)."""
    found: dict[str, metadata.Distribution] = {}
    visited: set[tuple[str, frozenset[str]]] = set()
    pending = [(req, frozenset()) for req in requirements if _wanted(req, set())]
    while pending:
        req, _ = pending.pop()
        name = canonicalize_name(req.name)
        key = (name, frozenset(req.extras))
        if key in visited:
            continue
        visited.add(key)
        dist = metadata.distribution(req.name)  # PackageNotFoundError: the dev venv lacks it
        found[name] = dist
        for raw in dist.requires or []:
            sub = Requirement(raw)
            if _wanted(sub, set(req.extras)):
                pending.append((sub, frozenset()))
    return found


def _top_level_owners() -> dict[str, set[str]]:
    """Which installed distributions put files under each top-level name of site-packages."""
    owners: dict[str, set[str]] = {}
    for dist in metadata.distributions():
        name = canonicalize_name(dist.metadata["Name"])
        for top in {entry.parts[0] for entry in dist.files or [] if entry.parts and entry.parts[0] != ".."}:
            owners.setdefault(top, set()).add(name)
    return owners


def link_closure(closure: dict[str, metadata.Distribution], site: Path) -> None:
    """Link each distribution into `site`: a top-level folder owned only by closure members as a whole
    (fast), a folder shared with outsiders (a namespace package) file by file, so nothing leaks in."""
    owners = _top_level_owners()
    members = set(closure)
    for dist in closure.values():
        base = Path(dist.locate_file(""))
        entries = [e for e in dist.files or [] if e.parts[0] != ".." and "__pycache__" not in e.parts]
        # console scripts (paths under "..") are left out: pip writes the project's own
        whole = {e.parts[0] for e in entries if owners.get(e.parts[0], set()) <= members}
        for rel in sorted(whole) + [e for e in entries if e.parts[0] not in whole]:
            src, dst = base / rel, site / rel
            if dst.exists() or dst.is_symlink() or not src.exists():
                continue
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(src, dst)


@pytest.fixture(scope="module")
def navig_venv(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("navig-only")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    site = Path(purelib)
    closure = dependency_closure(_extra_requirements("navig"))
    for tool in ("pip", "setuptools"):  # to install and build the project, not used by it
        closure.setdefault(tool, metadata.distribution(tool))
    link_closure(closure, site)
    # a copy of the sources: building in the checkout would leave build/ and egg-info behind
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for package in ("naviclues", "collect", "annotate", "navig"):
        shutil.copytree(ROOT / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    result = subprocess.run(
        [str(py), "-m", "pip", "install", "--no-index", "--no-build-isolation", "-q", f"{src}[navig]"],
        capture_output=True, text=True, env={**os.environ, "PIP_CONSTRAINT": "", "PIP_CONFIG_FILE": os.devnull})
    assert result.returncode == 0, f"pip could not install .[navig] from its closure:\n{result.stderr[-3000:]}"
    return venv


def test_navig_extra_leaves_out_the_video_stack(navig_venv):
    py = navig_venv / "bin" / "python"
    absent = subprocess.run(
        [str(py), "-c", "import importlib.util, json, sys; "
         f"print(json.dumps([m for m in {list(VIDEO_STACK)!r} if importlib.util.find_spec(m)]))"],
        check=True, capture_output=True, text=True).stdout
    assert json.loads(absent) == [], f"collect's video stack reached the navig-only install: {absent}"


def test_navig_score_and_locate_help_run_in_the_navig_only_install(navig_venv, tmp_path):
    navig = navig_venv / "bin" / "navig"
    preds, truth, out = tmp_path / "preds.jsonl", tmp_path / "truth.jsonl", tmp_path / "M.json"
    preds.write_text("\n".join(json.dumps(r) for r in [
        {"id": "tokyo", "prediction": {"latitude": 35.68, "longitude": 139.69, "country": "Japan"}},
        {"id": "lima", "prediction": {"latitude": 48.85, "longitude": 2.35, "country": "France"}}]) + "\n")
    truth.write_text("\n".join(json.dumps(r) for r in [
        {"id": "tokyo", "lat": 35.6895, "lng": 139.6917}, {"id": "lima", "lat": -12.0464, "lng": -77.0428}]) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    score = subprocess.run([str(navig), "score", "--predictions", str(preds), "--truth", str(truth), "--out", str(out)],
                           capture_output=True, text=True, cwd=tmp_path, env=env)
    assert score.returncode == 0, score.stderr[-3000:]
    metrics = json.loads(out.read_text())
    assert metrics["n"] == 2
    # tokyo is within 25 km of its truth, the "lima" guess is in Paris (~10,000 km off)
    assert metrics["acc_25km"] == pytest.approx(0.5) and metrics["n_failed"] == 0
    assert metrics["country_acc"] == pytest.approx(0.5)  # truth countries reverse-geocoded offline
    helped = subprocess.run([str(navig), "locate", "--help"], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert helped.returncode == 0 and "--model" in helped.stdout, helped.stderr[-3000:]


def test_benchmarks_import_nothing_from_tests():
    """Benchmarks run from a checkout without the test suite: no tests/ on sys.path, no test module."""
    test_modules = {p.stem for p in (ROOT / "tests").glob("*.py")} | {p.name for p in (ROOT / "tests").iterdir() if p.is_dir()}
    offenders = []
    for script in sorted((ROOT / "benchmarks").glob("*.py")):
        tree = ast.parse(script.read_text(), filename=str(script))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module.split(".")[0]]
            offenders += [f"{script.name}:{node.lineno} imports {n}" for n in names if n in test_modules or n == "tests"]
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.strip("/") == "tests":
                offenders.append(f"{script.name}:{node.lineno} puts tests/ on a path")
    assert offenders == []
