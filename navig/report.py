"""A self-contained HTML report of `navig locate` rows (no internet resources).

Each image is inlined (downscaled JPEG, base64) under an SVG overlay of its detections in the
original pixel coordinates, followed by its crops, reasoning, guidebook hits, sign text, map hits,
crop comments, the answer and the predicted point on an equirectangular world box.
"""
from __future__ import annotations

import base64
import html
import io
from collections import Counter
from pathlib import Path

from PIL import Image

from naviclues.fsutil import atomic_write_text
from navig.images import UNREADABLE, load_rgb

_COLORS = {"road sign": "#e6194b", "house": "#3cb44b", "building sign": "#4363d8"}
_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
.row{background:#fff;border:1px solid #ddd;border-radius:6px;padding:1em;margin:1em 0}
.grid{display:grid;grid-template-columns:minmax(0,480px) 1fr;gap:1em}
.crops img{max-height:120px;margin:2px;border:1px solid #ccc}
.fail{color:#b00020;font-weight:bold} .ok{color:#1b5e20;font-weight:bold}
pre{white-space:pre-wrap;background:#f4f4f4;padding:.5em;font-size:.85em;max-height:14em;overflow:auto}
table{border-collapse:collapse;font-size:.85em} td,th{border:1px solid #ddd;padding:2px 6px;text-align:left}
"""


def _data_url(image: Image.Image, max_side: int) -> str:
    image = image.copy()
    image.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _e(value) -> str:
    return html.escape("" if value is None else str(value))


def world_svg(lat: float | None, lng: float | None, width: int = 360) -> str:
    """Equirectangular world box (graticule every 30°) with the predicted point."""
    h = width // 2
    sx = width / 360
    lines = [f'<rect x="0" y="0" width="{width}" height="{h}" fill="#dbeafe" stroke="#555"/>']
    for lon in range(-150, 180, 30):
        x = (lon + 180) * sx
        lines.append(f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{h}" stroke="#9ab" stroke-width="0.5"/>')
    for la in range(-60, 90, 30):
        y = (90 - la) * sx
        lines.append(f'<line x1="0" y1="{y:.1f}" x2="{width}" y2="{y:.1f}" stroke="#9ab" '
                     f'stroke-width="{1 if la == 0 else 0.5}"/>')
    if lat is not None and lng is not None:
        x, y = (lng + 180) * sx, (90 - lat) * sx
        lines.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="#d00" stroke="#fff"/>')
        lines.append(f'<text x="{min(x + 7, width - 90):.1f}" y="{max(y - 6, 10):.1f}" font-size="10">'
                     f'{lat:.2f}, {lng:.2f}</text>')
    return f'<svg width="{width}" height="{h}" viewBox="0 0 {width} {h}" role="img">{"".join(lines)}</svg>'


def _image_block(row: dict, max_side: int) -> tuple[str, str]:
    trace = row.get("trace") or {}
    try:
        image = load_rgb(row["image"])
    except (KeyError, *UNREADABLE) as exc:
        return f'<p class="fail">image unavailable: {_e(exc)}</p>', ""
    w, h = image.size
    shapes = []
    for det in trace.get("detections", []):
        x0, y0, x1, y1 = det["box"]
        color = _COLORS.get(det["label"], "#f58231")
        shapes.append(f'<rect x="{x0}" y="{y0}" width="{x1 - x0}" height="{y1 - y0}" fill="none" '
                      f'stroke="{color}" stroke-width="{max(2, w // 200)}"><title>{_e(det["label"])} '
                      f'{det["score"]:.2f}</title></rect>')
    svg = (f'<svg viewBox="0 0 {w} {h}" width="100%" style="max-width:{max_side}px">'
           f'<image href="{_data_url(image, max_side)}" x="0" y="0" width="{w}" height="{h}"/>{"".join(shapes)}</svg>')
    crops = []
    for c in trace.get("crops", []):
        x0, y0, x1, y1 = (int(round(v)) for v in c["box"])
        crops.append(f'<figure style="display:inline-block;margin:2px"><img src="{_data_url(image.crop((x0, y0, x1, y1)), 200)}"'
                     f' alt="crop {c["index"]}"><figcaption>#{c["index"]} {_e(c["label"])} {c["score"]:.2f}'
                     f'</figcaption></figure>')
    return svg, "".join(crops)


def _table(rows: list[list], header: list[str]) -> str:
    if not rows:
        return "<p><i>none</i></p>"
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def render_row(row: dict, max_side: int = 480) -> str:
    trace = row.get("trace") or {}
    pred = row.get("prediction")
    svg, crops = _image_block(row, max_side)
    if pred:
        verdict = (f'<p class="ok">{_e(pred.get("city"))}, {_e(pred.get("country"))} — '
                   f'{pred["latitude"]:.4f}, {pred["longitude"]:.4f} (policy: {_e(row.get("policy"))})</p>')
    else:
        kind = f' ({_e(row["failure_kind"])})' if row.get("failure_kind") else ""
        verdict = f'<p class="fail">failure{kind}: {_e(row.get("failure"))}</p>'
    hits = _table([[h["crop"], h["label"], h.get("country"), h["distance"], h["clue"]]
                   for h in trace.get("guidebook_hits", [])], ["crop", "label", "country", "distance", "clue"])
    ocr = _table([[x["crop"], x["label"], x.get("text")] for x in trace.get("ocr", [])], ["crop", "label", "text"])
    geo = _table([[g["query"], h["name"], h.get("country_code"), round(h["lat"], 3), round(h["lng"], 3)]
                  for g in trace.get("geocoder_hits", []) for h in g["hits"]], ["query", "place", "cc", "lat", "lng"])
    comments = _table([[x["crop"], x["label"], x["text"]] for x in trace.get("comments", [])], ["crop", "label", "comment"])
    errors = "".join(f'<p class="fail">{_e(err)}</p>' for err in trace.get("errors", []))
    return f"""
<div class="row" id="{_e(row.get('id'))}"><h2>{_e(row.get('id'))}</h2>{verdict}{errors}
<div class="grid"><div>{svg}<div class="crops">{crops}</div>
{world_svg(pred["latitude"], pred["longitude"]) if pred else world_svg(None, None)}</div>
<div><h3>Reasoning</h3><pre>{_e(trace.get('reasoning'))}</pre>
<h3>Guidebook hits</h3>{hits}<h3>Sign text</h3>{ocr}<h3>Map results</h3>{geo}
<h3>Crop comments</h3>{comments}<h3>Answer</h3><pre>{_e(trace.get('raw_answer'))}</pre>
<details><summary>Guesser prompt</summary><pre>{_e((trace.get('prompts') or {}).get('guesser'))}</pre></details>
<p>tool usage: {_e(trace.get('tool_usage'))}<br>timings (s): {_e(trace.get('timings'))}</p></div></div></div>"""


def render_report(rows: list[dict], out: Path | str, title: str = "Navig locate report") -> Path:
    """Write the HTML report for `rows` atomically at `out`."""
    failures = sum(1 for r in rows if r.get("failure"))
    policies = Counter(r.get("policy") for r in rows if not r.get("failure"))
    summary = (f"<p>{len(rows)} images, {len(rows) - failures} predictions "
               f"({_e(dict(policies))}), {failures} failures.</p>")
    body = "".join(render_row(r) for r in rows)
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(title)}</title>"
            f"<style>{_CSS}</style></head><body><h1>{_e(title)}</h1>{summary}{body}</body></html>")
    return atomic_write_text(out, page)
