"""`hf push`: registration as an hf CLI extension, dry run through the real `hf`, and a real upload
against a local server speaking the Hub endpoints huggingface_hub calls."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml

from annotate import push
from annotate.build import build_dataset
from navig_fixtures import LocalServer
from test_build import make_examples

VENV_BIN = Path(sys.executable).parent
HF = VENV_BIN / "hf"
TOKEN = "hf_TESTsecretTOKEN0123456789abcdef"


# ---------------------------------------------------------------- a local Hub


class FakeHub:
    """The subset of the Hub HTTP API that create_repo/list_repo_refs/create_branch/list_repo_files/
    create_commit/create_tag use, with real state. Unknown routes answer 404 and are recorded."""

    def __init__(self, token: str):
        self.token = token
        self.repos: dict[str, dict] = {}
        self.requests: list[dict] = []
        self.unknown: list[str] = []
        self.commits: list[dict] = []
        self.lock = threading.Lock()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with hub.lock:
                    hub.requests.append({"method": self.command, "path": self.path,
                                         "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})
                    status, payload, headers = hub.route(self.command, self.path, self.headers, body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

        self.server = LocalServer(Handler)
        self.url = self.server.url

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.server.close()

    # -- state helpers
    @staticmethod
    def _oid(*parts) -> str:
        return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()

    def _error(self, status, message, code=None):
        return status, {"error": message}, ({"X-Error-Code": code, "X-Error-Message": message} if code else {})

    def route(self, method, raw_path, headers, body):
        url = urlsplit(raw_path)
        path = unquote(url.path)
        if method == "GET" and path == "/api/agent-harnesses":  # public registry huggingface_hub fetches daily
            return 200, {"standardEnvVars": [], "harnesses": {}}, {}
        if headers.get("Authorization") != f"Bearer {self.token}":
            return self._error(401, "Invalid credentials in Authorization header")
        if method == "GET" and path == "/api/whoami-v2":
            return 200, {"type": "user", "name": "tester", "auth": {"accessToken": {"role": "write"}}}, {}
        if method == "POST" and path == "/api/repos/create":
            spec = json.loads(body)
            repo_id = f"{spec['organization']}/{spec['name']}"
            if repo_id in self.repos:
                return 409, {"error": "You already created this dataset repo", "url": f"{self.url}/datasets/{repo_id}"}, {}
            root = self._oid("init", repo_id)
            self.repos[repo_id] = {"type": spec.get("type"), "visibility": spec.get("visibility"),
                                   "branches": {"main": root}, "tags": {}, "trees": {root: {}}}
            return 200, {"url": f"{self.url}/datasets/{repo_id}", "name": repo_id}, {}
        if method == "POST" and path == "/api/validate-yaml":
            spec = json.loads(body)
            match = re.match(r"^---\n(.*?)\n---\n", spec["content"], re.S)
            try:
                yaml.safe_load(match.group(1)) if match else None
            except yaml.YAMLError as exc:
                return 400, {"errors": [{"message": str(exc)}], "warnings": []}, {}
            return 200, {"errors": [], "warnings": []}, {}
        info = re.match(r"^/api/datasets/([^/]+/[^/]+)$", path)
        if method == "GET" and info:
            repo = self.repos.get(info.group(1))
            if repo is None:
                return self._error(404, "Repository not found", "RepoNotFound")
            return 200, {"id": info.group(1), "private": repo["visibility"] == "private",
                         "sha": repo["branches"]["main"]}, {}
        m = re.match(r"^/api/datasets/([^/]+/[^/]+)/(refs|preupload|commit|tag|branch|tree)(?:/([^/]+))?(/.*)?$", path)
        if not m:
            self.unknown.append(f"{method} {raw_path}")
            return self._error(404, f"unknown route {method} {path}")
        repo_id, action, ref, _rest = m.groups()
        repo = self.repos.get(repo_id)
        if repo is None:
            return self._error(404, "Repository not found", "RepoNotFound")
        if method == "GET" and action == "refs":
            def refs(kind, items):
                return [{"name": n, "ref": f"refs/{kind}/{n}", "targetCommit": o} for n, o in items.items()]
            return 200, {"branches": refs("heads", repo["branches"]), "converts": [], "tags": refs("tags", repo["tags"])}, {}
        if method == "POST" and action == "branch":
            if ref in repo["branches"]:
                return self._error(409, f"Branch {ref} already exists")
            start = (json.loads(body or b"{}") or {}).get("startingPoint") or "main"
            repo["branches"][ref] = repo["branches"].get(start, start)
            return 200, {}, {}
        if method == "GET" and action == "tree":
            oid = repo["branches"].get(ref)
            if oid is None:
                return self._error(404, f"Invalid rev id: {ref}", "RevisionNotFound")
            files = repo["trees"][oid]
            return 200, [{"type": "file", "path": p, "size": len(b), "oid": hashlib.sha1(b).hexdigest()}
                         for p, b in sorted(files.items())], {}
        if method == "POST" and action == "preupload":
            if ref not in repo["branches"]:
                return self._error(404, f"Invalid rev id: {ref}", "RevisionNotFound")
            files = json.loads(body)["files"]
            return 200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None}
                                   for f in files]}, {}
        if method == "POST" and action == "commit":
            if ref not in repo["branches"]:
                return self._error(404, f"Invalid rev id: {ref}", "RevisionNotFound")
            assert headers.get("Content-Type") == "application/x-ndjson"
            lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
            header = lines[0]
            assert header["key"] == "header"
            parent = repo["branches"][ref]
            tree = dict(repo["trees"][parent])
            added, deleted = {}, []
            for item in lines[1:]:
                if item["key"] == "file":
                    assert item["value"]["encoding"] == "base64"
                    added[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                elif item["key"] == "deletedFile":
                    deleted.append(item["value"]["path"])
                else:
                    return self._error(400, f"unsupported operation {item['key']}")
            for p in deleted:
                tree.pop(p, None)
            tree.update(added)
            oid = self._oid(parent, header["value"], sorted(tree))
            repo["trees"][oid] = tree
            repo["branches"][ref] = oid
            self.commits.append({"repo": repo_id, "branch": ref, "summary": header["value"]["summary"],
                                 "added": added, "deleted": deleted, "oid": oid})
            return 200, {"commitUrl": f"{self.url}/datasets/{repo_id}/commit/{oid}", "commitOid": oid,
                         "pullRequestUrl": None}, {}
        if method == "POST" and action == "tag":
            tag = json.loads(body)["tag"]
            if tag in repo["tags"]:
                return self._error(409, f"Tag {tag} already exists")
            target = repo["branches"].get(ref, ref)
            if target not in repo["trees"]:
                return self._error(404, f"Invalid rev id: {ref}", "RevisionNotFound")
            repo["tags"][tag] = target
            return 200, {}, {}
        self.unknown.append(f"{method} {raw_path}")
        return self._error(404, f"unknown route {method} {path}")


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    root = tmp_path_factory.mktemp("push")
    build_dataset(make_examples(root / "in", n_challenges=3, rounds=2, videos_without_token=0), [], root / "out",
                  test_challenges=1)
    return root / "out"


@pytest.fixture()
def cli_env(tmp_path):
    """A fresh HOME/HF_HOME with hf-push registered, as a subprocess environment."""
    # conftest sets the *_OFFLINE switches for the whole session; this env talks to a local hub only
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_") and k != "TRANSFORMERS_OFFLINE"}
    env.update(HOME=str(tmp_path / "home"), HF_HOME=str(tmp_path / "home" / "hf"), HF_HUB_DISABLE_UPDATE_CHECK="1",
               HF_HUB_DISABLE_TELEMETRY="1", PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
               NO_COLOR="1")
    (tmp_path / "home").mkdir()
    for _ in range(2):  # idempotent
        done = subprocess.run([str(VENV_BIN / "hf-push"), "register"], env=env, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, done.stderr
    assert "already registered" in done.stdout
    return env


@pytest.fixture()
def online_to(monkeypatch):
    """Point the in-process huggingface_hub at a local server (conftest switched it offline)."""
    from huggingface_hub import constants

    def point(url: str) -> None:
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "ENDPOINT", url)

    return point


def run_hf(args, env, timeout=120):
    return subprocess.run([str(HF), *args], env=env, capture_output=True, text=True, timeout=timeout)


def hub_files(out: Path) -> dict[str, bytes]:
    hub = out / "hub"
    return {p.relative_to(hub).as_posix(): p.read_bytes() for p in hub.rglob("*") if p.is_file()}


# ---------------------------------------------------------------- tests


def test_registration_uses_hf_manifest_format(cli_env):
    from huggingface_hub.cli.extensions import ExtensionManifest

    ext_dir = Path(cli_env["HOME"]) / ".local" / "share" / "hf" / "extensions" / "hf-push"
    manifest = ExtensionManifest.load(ext_dir)
    assert manifest.short_name == "push" and Path(manifest.executable_path).name == "hf-push"
    listed = run_hf(["--help"], cli_env, timeout=60)
    assert listed.returncode == 0 and re.search(r"^\s+push\s", listed.stdout, re.M), listed.stdout


def test_dry_run_through_hf_cli(release, cli_env):
    env = {**cli_env, "HF_TOKEN": TOKEN, "HF_HUB_OFFLINE": "1"}
    done = run_hf(["push", str(release), "--repo-id", "org/naviclues", "--revision", "v1-branch", "--tag", "v1.0",
                   "--private", "--dry-run"], env)
    assert done.returncode == 0, done.stderr
    output = done.stdout + done.stderr
    assert TOKEN not in output
    for rel, data in hub_files(release).items():
        assert f"add {rel} ({len(data)} bytes)" in output
    assert "create_repo org/naviclues (repo_type=dataset, private=True" in output
    assert "create_branch v1-branch" in output and "create_tag v1.0" in output
    assert "token: found" in output


def test_dry_run_contacts_no_server(release, cli_env):
    with FakeHub(TOKEN) as hub:
        env = {**cli_env, "HF_TOKEN": TOKEN, "HF_ENDPOINT": hub.url}
        done = run_hf(["push", str(release), "--repo-id", "org/naviclues", "--tag", "v1.0", "--dry-run"], env)
        assert done.returncode == 0, done.stderr
        assert "create_commit" in done.stdout + done.stderr
        # only the hf CLI's own daily registry fetch may reach the endpoint, never the release
        assert [r["path"] for r in hub.requests if r["path"] != "/api/agent-harnesses"] == []


def test_private_release_never_lands_in_a_public_repo(release, monkeypatch, online_to, capsys):
    with FakeHub(TOKEN) as hub:
        online_to(hub.url)
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        assert push.main([str(release), "--repo-id", "org/open"]) == 0  # created public
        assert len(hub.commits) == 1
        capsys.readouterr()
        assert push.main([str(release), "--repo-id", "org/open", "--private"]) == 1
        err = capsys.readouterr().err
        assert "org/open already exists and is public" in err and TOKEN not in err
        assert len(hub.commits) == 1  # nothing uploaded
        assert push.main([str(release), "--repo-id", "org/closed", "--private"]) == 0
        assert push.main([str(release), "--repo-id", "org/closed", "--private", "--tag", "v2"]) == 0  # stays private
        assert hub.repos["org/closed"]["visibility"] == "private" and hub.unknown == []


def test_upload_through_hf_cli_against_local_hub(release, cli_env):
    with FakeHub(TOKEN) as hub:
        env = {**cli_env, "HF_TOKEN": TOKEN, "HF_ENDPOINT": hub.url}
        done = run_hf(["push", str(release), "--repo-id", "org/naviclues", "--tag", "v1.0", "--private"], env)
        assert done.returncode == 0, done.stdout + done.stderr
        assert hub.unknown == []
        assert TOKEN not in done.stdout + done.stderr
        repo = hub.repos["org/naviclues"]
        assert repo["type"] == "dataset" and repo["visibility"] == "private"
        assert len(hub.commits) == 1  # one commit for the whole release
        commit = hub.commits[0]
        assert commit["added"] == hub_files(release)
        assert repo["tags"] == {"v1.0": commit["oid"]}
        # the token only ever travelled in the Authorization header
        for request in hub.requests:
            if request["path"] == "/api/agent-harnesses":
                assert "authorization" not in request["headers"]
                continue
            assert request["headers"].get("authorization") == f"Bearer {TOKEN}", (request["method"], request["path"], request["headers"])
            other_headers = {k: v for k, v in request["headers"].items() if k != "authorization"}
            assert TOKEN not in request["path"] and TOKEN not in json.dumps(other_headers)
            assert TOKEN.encode() not in request["body"]
        called = [f"{r['method']} {urlsplit(r['path']).path}" for r in hub.requests]
        for expected in ("POST /api/repos/create", "GET /api/datasets/org/naviclues/refs",
                         "POST /api/validate-yaml", "POST /api/datasets/org/naviclues/preupload/main",
                         "POST /api/datasets/org/naviclues/commit/main",
                         f"POST /api/datasets/org/naviclues/tag/{commit['oid']}"):
            assert expected in called

        # releasing the same tag again is refused before anything is committed
        again = run_hf(["push", str(release), "--repo-id", "org/naviclues", "--tag", "v1.0"], env)
        assert again.returncode != 0
        assert "tag v1.0 already exists" in again.stderr and len(again.stderr.strip().splitlines()) == 1
        assert len(hub.commits) == 1


def test_new_branch_and_stale_shards_in_process(release, monkeypatch, online_to):
    """--revision creates the branch; files of an older release under data/ are deleted in the commit."""
    with FakeHub(TOKEN) as hub:
        online_to(hub.url)
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        assert push.main([str(release), "--repo-id", "org/ds", "--revision", "dev"]) == 0
        repo = hub.repos["org/ds"]
        assert set(repo["branches"]) == {"main", "dev"} and hub.commits[-1]["branch"] == "dev"
        # simulate an older release that had more shards
        old_tree = dict(repo["trees"][repo["branches"]["dev"]])
        old_tree["data/train-00001-of-00002.parquet"] = b"old shard"
        repo["trees"]["old"] = old_tree
        repo["branches"]["dev"] = "old"
        report = push.push_release(release, "org/ds", revision="dev", tag="v2")
        assert report.deleted == ["data/train-00001-of-00002.parquet"]
        assert hub.commits[-1]["deleted"] == ["data/train-00001-of-00002.parquet"]
        assert repo["tags"]["v2"] == hub.commits[-1]["oid"]
        assert hub.unknown == []


def test_missing_token_is_one_clear_line(release, tmp_path, monkeypatch, capsys):
    from huggingface_hub import constants

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "no-tokens"))
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing may be contacted
    assert push.main([str(release), "--repo-id", "org/ds"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == "hf-push: error: no Hugging Face token: set HF_TOKEN or run `hf auth login`"


def test_missing_build_is_one_clear_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert push.main([str(tmp_path / "nothing"), "--repo-id", "org/ds", "--dry-run"]) == 1
    assert "README.md is missing" in capsys.readouterr().err
    (tmp_path / "half" / "hub").mkdir(parents=True)
    (tmp_path / "half" / "hub" / "README.md").write_text("---\n---\n")
    assert push.main([str(tmp_path / "half"), "--repo-id", "org/ds"]) == 1
    err = capsys.readouterr().err
    assert "no data/*.parquet files" in err and len(err.strip().splitlines()) == 1 and TOKEN not in err


def test_hub_errors_are_redacted(release, monkeypatch, capsys, online_to):
    """A server that rejects the token: the error line names the failure, never the token."""
    with FakeHub("a-different-token") as hub:
        online_to(hub.url)
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        assert push.main([str(release), "--repo-id", "org/ds", "--tag", "v1"]) == 1
    err = capsys.readouterr().err
    assert TOKEN not in err and "401" in err and len(err.strip().splitlines()) == 1


def test_redact():
    assert push.redact(f"bad header Bearer {TOKEN}", TOKEN) == "bad header Bearer ***"
    assert push.redact("nothing", None) == "nothing"


def test_dry_run_needs_no_token_and_says_so(release, tmp_path, monkeypatch, capsys):
    from huggingface_hub import constants

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "no-tokens"))
    assert push.main([str(release / "hub"), "--repo-id", "org/ds", "--dry-run"]) == 0  # the hub folder itself works too
    out = capsys.readouterr().out
    assert "token: NOT found" in out
    total = sum(len(b) for b in hub_files(release).values())
    assert out.strip().splitlines()[-1] == f"total: {len(hub_files(release))} files, {total} bytes"
