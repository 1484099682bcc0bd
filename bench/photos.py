"""Photo-like JPEGs for benchmarks: smooth colour regions with sensor grain, like dogImages' photos."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def photo(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    coarse = rng.integers(0, 256, size=(max(2, height // 64), max(2, width // 64), 3), dtype=np.uint8)
    image = Image.fromarray(coarse, "RGB").resize((width, height), Image.Resampling.BICUBIC)
    grain = rng.integers(-12, 13, size=(height, width, 1), dtype=np.int16)
    return Image.fromarray(np.clip(np.asarray(image, dtype=np.int16) + grain, 0, 255).astype(np.uint8))


def photo_jpeg(width: int, height: int, seed: int = 0, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    photo(np.random.default_rng(seed), width, height).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()
