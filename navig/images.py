"""Opening the images a user hands over: any failure to read one is that image's failure, named."""
from __future__ import annotations

from pathlib import Path

from PIL import Image

# what Pillow raises for a file it cannot or will not decode: missing/truncated/not an image (OSError),
# bad header values (ValueError, SyntaxError), and pixel counts past its decompression-bomb guard
UNREADABLE = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


def load_rgb(path: Path | str) -> Image.Image:
    """The image at `path` as RGB, fully decoded; raises one of `UNREADABLE`."""
    with Image.open(path) as im:
        return im.convert("RGB")
