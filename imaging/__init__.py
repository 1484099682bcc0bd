"""Decoding any image into an RGB PIL image, cheaply: shared by the training and serving images.

Both sides must turn the same file into the same pixels (the serving parity test holds
them to 1e-4 in probabilities), so the decode lives here once, with Pillow and numpy only.

dogImages has photos several thousand pixels wide; decoding them whole only to shrink
them to 256 px is most of an input pipeline's cost. JPEG's draft mode decodes at 1/2,
1/4 or 1/8 scale straight from the DCT coefficients, never below the requested size.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

# Larger than any photo dogImages holds (~4k x 3k) or a phone takes (~50 MP).
DEFAULT_MAX_PIXELS = 64_000_000
# The formats this project documents. Pillow has decoders for dozens more (TGA, SGI, PCX, IM, SPIDER,
# EPS through Ghostscript, ...): each is attack surface for a file a caller or a dataset controls, and its
# own security notes advise naming the formats that Image.open may try.
FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")


class ImageTooLarge(ValueError):
    """More pixels than allowed, or sides too unequal: refused from the header, before any decoding."""

    def __init__(self, message: str, limit: str):
        super().__init__(message)
        self.limit = limit  # "pixels" or "aspect": which cap the image broke


def open_image(source, min_side: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS,
               formats: tuple[str, ...] = FORMATS, max_aspect_ratio: float | None = None) -> Image.Image:
    """Open a path or binary file, header only (nothing decoded yet), refusing what breaks the caps.

    With `min_side`, a JPEG is set to decode at the smallest scale whose shorter side is still >= min_side;
    `image.size` is then what load() will decode. The caller closes the image.
    """
    image = Image.open(source, formats=list(formats))
    try:
        width, height = image.size
        if width * height > max_pixels:
            raise ImageTooLarge(f"image is {width}x{height} pixels, more than the {max_pixels:,} allowed", "pixels")
        if max_aspect_ratio is not None and max(width, height) > max_aspect_ratio * max(1, min(width, height)):
            # resizing the shorter side up to the model's size would blow the longer one up with it
            raise ImageTooLarge(f"image is {width}x{height} pixels: its sides differ by more than "
                                f"{max_aspect_ratio:g}:1", "aspect")
        if min_side is not None and image.format in ("JPEG", "MPO"):  # MPO: a camera's JPEG
            # draft keeps both sides >= the requested box, so a square box bounds the shorter side.
            image.draft("RGB", (min_side, min_side))
    except BaseException:
        image.close()
        raise
    return image


def load_rgb(source, min_side: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS,
             formats: tuple[str, ...] = FORMATS) -> Image.Image:
    """Open a path or binary file as RGB (the first frame of animations and multi-page files).

    With `min_side`, JPEGs decode at the smallest scale whose shorter side is still >= min_side.
    """
    with open_image(source, min_side, max_pixels, formats) as image:
        image.load()  # raises on truncated or corrupt data
        return to_rgb(image)


def to_rgb(image: Image.Image) -> Image.Image:
    """Any mode (L, P, RGBA, CMYK, 16-bit, float) to 8-bit RGB, EXIF orientation applied."""
    image = ImageOps.exif_transpose(image)
    mode = image.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        image = Image.fromarray(_to_uint8(np.asarray(image), sixteen_bit=mode != "F"), mode="L")
    elif mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info):
        # Transparent pixels keep arbitrary colour values; show them on white as viewers do.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image if image.mode == "RGB" else image.convert("RGB")


def _to_uint8(pixels: np.ndarray, sixteen_bit: bool) -> np.ndarray:
    pixels = pixels.astype(np.float64)
    # Mode "I" also holds 8-bit data from some decoders; only rescale what exceeds 8 bits.
    if sixteen_bit and pixels.max(initial=0) > 255:
        pixels = pixels / 257.0
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
