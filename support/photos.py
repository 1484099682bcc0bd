"""Photo-like JPEGs for benchmarks: smooth colour regions with sensor grain, like dogImages' photos."""

from __future__ import annotations

import io
from pathlib import Path

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


def make_photos(root: Path, count: int, classes: int, seed: int = 0, max_width: int = 3000) -> Path:
    """A class-per-folder set of dogImages-sized JPEGs (500x375 up to max_width x 2000)."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        width = int(rng.integers(500, max_width + 1))
        height = int(np.clip(width * rng.uniform(0.66, 0.75), 375, 2000))
        folder = root / f"{i % classes + 1:03d}.Class_{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        photo(rng, width, height).save(folder / f"photo_{i:04d}.jpg", quality=90)
    return root
