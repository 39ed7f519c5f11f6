"""`hf push`: upload a built release folder (OUT/hub) to a Hub dataset repo in one commit and tag it.

    hf push OUT --repo-id ORG/NAME [--revision BRANCH] [--tag vX.Y] [--private] [--dry-run]

`hf-push` is this package's console script. `hf-push register` writes a manifest into
huggingface_hub's CLI extension folder (with huggingface_hub's own `ExtensionManifest`), after
which the `hf` CLI dispatches the unknown top-level command `push` to it: `hf push ...` runs
`hf-push ...` with the remaining arguments.

The token comes from `HF_TOKEN` or the hub login (`huggingface_hub.get_token()`); it is only ever
handed to `HfApi` and is scrubbed from any error message before that message is printed.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from naviclues.secrets import redact as collect_redact

EXTENSION_SHORT_NAME = "push"
EXTENSION_OWNER = "naviclues-local"
RELEASE_FOLDER = "hub"
# Files under these prefixes are owned by the release: ones the new release no longer has are
# deleted in the same commit, so a shrinking shard count never leaves stale `data/<split>-*` files
# that the card's globs would still load.
RELEASE_OWNED_PREFIXES = ("data/", "plots/")


class PushError(Exception):
    """A failure to report as one line with a non-zero exit."""


@dataclass
class PlannedFile:
    path_in_repo: str
    local_path: Path
    size: int


@dataclass
class PushReport:
    repo_id: str
    revision: str
    files: list[PlannedFile]
    dry_run: bool
    operations: list[str] = field(default_factory=list)
    commit_url: str | None = None
    commit_oid: str | None = None
    tag: str | None = None
    deleted: list[str] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


# ---------------------------------------------------------------- helpers


def redact(text: str, secret: str | None) -> str:
    return collect_redact(text, [secret] if secret else []) or ""


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def release_dir(out: Path | str) -> Path:
    """OUT/hub when given OUT, or the folder itself when it already is the release folder."""
    out = Path(out)
    if (out / RELEASE_FOLDER / "README.md").is_file() or not (out / "README.md").is_file():
        return out / RELEASE_FOLDER
    return out


def plan_upload(out: Path | str) -> list[PlannedFile]:
    """Every file of the release folder, or PushError when the build is missing or incomplete."""
    hub = release_dir(out)
    if not (hub / "README.md").is_file():
        raise PushError(f"no built release at {hub}: README.md is missing (run the dataset build first)")
    parquet = sorted((hub / "data").glob("*.parquet")) if (hub / "data").is_dir() else []
    if not parquet:
        raise PushError(f"no built release at {hub}: no data/*.parquet files (run the dataset build first)")
    files = []
    for path in sorted(p for p in hub.rglob("*") if p.is_file()):
        rel = path.relative_to(hub).as_posix()
        if any(part.startswith(".") for part in Path(rel).parts):
            continue  # temp files of an interrupted write
        files.append(PlannedFile(rel, path, path.stat().st_size))
    return files


def resolve_token(token: str | None = None) -> str:
    from huggingface_hub import get_token

    token = token or get_token()
    if not token:
        raise PushError("no Hugging Face token: set HF_TOKEN or run `hf auth login`")
    return token


# ---------------------------------------------------------------- push


def push_release(
    out: Path | str,
    repo_id: str,
    *,
    revision: str | None = None,
    tag: str | None = None,
    private: bool = False,
    dry_run: bool = False,
    token: str | None = None,
    endpoint: str | None = None,
    commit_message: str | None = None,
) -> PushReport:
    files = plan_upload(out)
    branch = revision or "main"
    report = PushReport(repo_id=repo_id, revision=branch, files=files, dry_run=dry_run, tag=tag)
    message = commit_message or (f"Release {tag}" if tag else "Upload NaviClues release")
    report.operations.append(f"create_repo {repo_id} (repo_type=dataset, private={private}, exist_ok=True)")
    if tag:
        report.operations.append(f"check that tag {tag} does not exist yet")
    if revision and revision != "main":
        report.operations.append(f"create_branch {revision} if missing")
    report.operations.append(f"delete remote files under {', '.join(RELEASE_OWNED_PREFIXES)} absent from the release")
    report.operations.append(f"create_commit on {branch}: {message!r} with {len(files)} files, {report.total_bytes} bytes")
    report.operations += [f"  add {f.path_in_repo} ({f.size} bytes)" for f in files]
    if tag:
        report.operations.append(f"create_tag {tag} on the new commit")
    if dry_run:
        return report

    secret = resolve_token(token)
    try:
        _upload(report, secret, endpoint=endpoint, private=private, message=message, revision=revision)
    except PushError as exc:
        raise PushError(redact(str(exc), secret)) from None
    except Exception as exc:  # network/Hub errors: one redacted line, no chained traceback
        raise PushError(redact(_one_line(f"{type(exc).__name__}: {exc}"), secret)) from None
    return report


def _upload(report: PushReport, token: str, *, endpoint: str | None, private: bool, message: str,
            revision: str | None) -> None:
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
    from huggingface_hub.errors import RevisionNotFoundError

    api = HfApi(endpoint=endpoint, token=token)
    repo_id, tag = report.repo_id, report.tag
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    if private and not api.dataset_info(repo_id).private:
        # create_repo leaves an existing repo's visibility alone: never upload a "private" release in public
        raise PushError(f"dataset {repo_id} already exists and is public; --private cannot change that. Make it "
                        "private on the Hub first, or push without --private")
    refs = api.list_repo_refs(repo_id, repo_type="dataset")
    if tag and any(t.name == tag for t in refs.tags):
        raise PushError(f"tag {tag} already exists on dataset {repo_id}; choose a new --tag")
    if revision and revision != "main" and not any(b.name == revision for b in refs.branches):
        api.create_branch(repo_id, branch=revision, repo_type="dataset", exist_ok=True)

    new_paths = {f.path_in_repo for f in report.files}
    try:
        remote = api.list_repo_files(repo_id, repo_type="dataset", revision=report.revision)
    except RevisionNotFoundError:
        remote = []
    stale = sorted(p for p in remote if p.startswith(RELEASE_OWNED_PREFIXES) and p not in new_paths)
    operations: list[Any] = [CommitOperationDelete(path_in_repo=p) for p in stale]
    operations += [CommitOperationAdd(path_in_repo=f.path_in_repo, path_or_fileobj=str(f.local_path)) for f in report.files]
    info = api.create_commit(repo_id, operations, commit_message=message, repo_type="dataset", revision=revision)
    report.commit_url, report.commit_oid, report.deleted = info.commit_url, info.oid, stale
    if tag:
        api.create_tag(repo_id, tag=tag, revision=info.oid, repo_type="dataset", tag_message=message)


# ---------------------------------------------------------------- hf CLI extension


def _extension_dir() -> Path:
    from huggingface_hub.cli import extensions

    getter = getattr(extensions, "_get_extension_dir", None)
    if getter is not None:
        return getter(EXTENSION_SHORT_NAME)
    return extensions.EXTENSIONS_ROOT.expanduser() / f"hf-{EXTENSION_SHORT_NAME}"


def _own_executable() -> Path:
    candidate = Path(sys.executable).parent / "hf-push"
    if candidate.is_file():
        return candidate
    found = shutil.which("hf-push")
    if found:
        return Path(found)
    raise PushError("cannot find the hf-push executable; install the naviclues package (pip install -e .)")


def register_extension(executable: Path | str | None = None) -> tuple[Path, bool]:
    """Make `hf push` run hf-push. Returns (manifest path, changed); a second call changes nothing."""
    from huggingface_hub.cli.extensions import MANIFEST_FILENAME, ExtensionManifest

    exe = str(Path(executable) if executable else _own_executable())
    ext_dir = _extension_dir()
    manifest_path = ext_dir / MANIFEST_FILENAME
    try:
        current = ExtensionManifest.load(ext_dir)
    except Exception:
        current = None
    if current is not None and current.executable_path == exe:
        return manifest_path, False
    manifest = ExtensionManifest(
        owner=EXTENSION_OWNER,
        repo=f"hf-{EXTENSION_SHORT_NAME}",
        repo_id=f"{EXTENSION_OWNER}/hf-{EXTENSION_SHORT_NAME}",
        short_name=EXTENSION_SHORT_NAME,
        executable_path=exe,
        type="python",
        installed_at=datetime.now(timezone.utc),
        description="Upload a NaviClues release folder (OUT/hub) in one commit and tag it (naviclues)",
        commit_sha=None,
    )
    ext_dir.mkdir(parents=True, exist_ok=True)
    # ExtensionManifest.save writes the file in place; save into a scratch folder and rename so a
    # crash never leaves a half-written manifest that would break every `hf` call.
    with tempfile.TemporaryDirectory(dir=ext_dir.parent, prefix=".hf-push-manifest-") as scratch:
        manifest.save(Path(scratch))
        os.replace(Path(scratch) / MANIFEST_FILENAME, manifest_path)
    return manifest_path, True


# ---------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hf push",
        description="Upload a NaviClues release (OUT/hub) to a Hub dataset repo in one commit and tag it. "
        "`hf-push register` makes `hf push` available.",
    )
    parser.add_argument("out", help="build output folder (containing hub/) or the hub folder itself; "
                        "or the word `register`")
    parser.add_argument("--repo-id", help="ORG/NAME of the dataset repo")
    parser.add_argument("--revision", help="branch to commit to (created when new); default main")
    parser.add_argument("--tag", help="tag to create on the new commit, e.g. v1.0")
    parser.add_argument("--private", action="store_true", help="create the repo private (when it does not exist)")
    parser.add_argument("--dry-run", action="store_true", help="list every operation and size; no network")
    parser.add_argument("--message", help="commit message")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    if args_in[:1] in (["register"], ["--register"]):
        try:
            path, changed = register_extension()
        except PushError as exc:
            print(f"hf-push: error: {_one_line(str(exc))}", file=sys.stderr)
            return 1
        state = "registered" if changed else "already registered"
        print(f"hf push {state}: {path}")
        return 0

    args = _parser().parse_args(args_in)
    if not args.repo_id:
        print("hf-push: error: --repo-id ORG/NAME is required", file=sys.stderr)
        return 2
    if args.repo_id.count("/") != 1 or not all(args.repo_id.split("/")):
        print(f"hf-push: error: --repo-id must be ORG/NAME, got {args.repo_id!r}", file=sys.stderr)
        return 2
    try:
        report = push_release(
            args.out, args.repo_id, revision=args.revision, tag=args.tag, private=args.private,
            dry_run=args.dry_run, commit_message=args.message,
        )
    except PushError as exc:
        print(f"hf-push: error: {_one_line(str(exc))}", file=sys.stderr)
        return 1

    if report.dry_run:
        from huggingface_hub import constants

        from huggingface_hub import get_token

        print(f"dry run: nothing sent to {constants.ENDPOINT}")
        print("token: " + ("found" if get_token() else "NOT found (set HF_TOKEN or run `hf auth login`)"))
        for line in report.operations:
            print(line)
        print(f"total: {len(report.files)} files, {report.total_bytes} bytes")
        return 0
    print(f"committed {len(report.files)} files ({report.total_bytes} bytes) to {report.repo_id}@{report.revision}: "
          f"{report.commit_url}")
    if report.deleted:
        print(f"deleted stale files: {', '.join(report.deleted)}")
    if report.tag:
        print(f"tagged {report.tag} -> {report.commit_oid}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
