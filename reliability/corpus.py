"""The bad-input corpus: requests a real endpoint gets from buggy clients and odd files, with the answer each earns.

Every case is one request to /invocations and the status the endpoint must answer: a 4xx with
a JSON error for what it cannot classify, 200 with a prediction for what is valid but odd (a
1x1 image, CMYK, 16-bit, an animation's first frame). The test suite and `python -m reliability`
send all of them to a live server and check it stays healthy after each.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import struct
import warnings
import zlib

from PIL import Image

CUSTOM_ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    body: bytes
    content_type: str | None
    status: int  # what the endpoint must answer; 200: valid but odd input, answered with a prediction
    headers: dict = dataclasses.field(default_factory=dict)


def image(fmt: str, mode: str = "RGB", size=(120, 90), color=(200, 40, 40), **save) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).convert(mode).save(buffer, fmt, **save)
    return buffer.getvalue()


def sixteen_bit_png() -> bytes:
    buffer = io.BytesIO()
    Image.frombytes("I;16", (64, 48), bytes(range(256)) * 24).save(buffer, "PNG")
    return buffer.getvalue()


def palette_with_alpha_png() -> bytes:
    picture = Image.new("P", (64, 48), 1)
    picture.putpalette([0, 0, 0, 200, 40, 40] + [0] * 762)
    buffer = io.BytesIO()
    picture.save(buffer, "PNG", transparency=0)
    return buffer.getvalue()


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (64, 48), color) for color in ((200, 40, 40), (40, 200, 40), (40, 40, 200))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buffer.getvalue()


def multipage_tiff() -> bytes:
    pages = [Image.new("RGB", (64, 48), color) for color in ((200, 40, 40), (40, 200, 40))]
    buffer = io.BytesIO()
    pages[0].save(buffer, "TIFF", save_all=True, append_images=pages[1:])
    return buffer.getvalue()


def exif_rotated_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees on display
    return image("JPEG", size=(120, 90), exif=exif.tobytes())


def pixel_bomb_png(side: int = 20000, height: int | None = None) -> bytes:
    """A real side x height (default square) 1-bit PNG, all black: 400 million pixels in ~50 KB of zlib."""
    width, height = side, height or side
    raw_row = b"\x00" + b"\x00" * ((width + 7) // 8)
    rows_per_block = max(1, (1 << 20) // len(raw_row))  # ~1 MB at a time: fast for 2.5 M short rows, small in memory
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(raw_row * min(rows_per_block, height - start))
                    for start in range(0, height, rows_per_block)) + compressor.flush()

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


# Formats Pillow decodes that the endpoint does not: none may be decoded, whatever the Content-Type says.
UNDOCUMENTED_FORMATS = ("TGA", "SGI", "PCX", "PPM", "ICO", "IM", "DDS", "QOI", "SPIDER", "JPEG2000", "PDF", "XBM",
                        "EPS", "PSD", "FITS", "ICNS", "BLP", "MSP", "WMF")


def undocumented_format(fmt: str) -> bytes | None:
    """A small image in one of UNDOCUMENTED_FORMATS, or None where this Pillow cannot write it."""
    modes = {"SPIDER": "F", "XBM": "1", "MSP": "1", "DDS": "RGBA", "PSD": "RGB", "FITS": "L", "BLP": "P"}
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():  # Pillow 13 deprecates writing IM, not reading it
            warnings.simplefilter("ignore", DeprecationWarning)
            Image.new("RGB", (64, 48), (200, 40, 40)).convert(modes.get(fmt, "RGB")).save(buffer, fmt)
    except (KeyError, OSError, ValueError):  # no writer (PSD, WMF), or one that needs Ghostscript (EPS)
        return None
    return buffer.getvalue()


def instances(*payloads: bytes) -> bytes:
    return json.dumps({"instances": [{"b64": base64.b64encode(p).decode()} for p in payloads]}).encode()


def cases(max_payload_bytes: int, max_instances: int) -> list[Case]:
    jpeg = image("JPEG")
    return [
        # broken or non-image bodies
        Case("zero-byte JPEG", b"", "image/jpeg", 400),
        Case("truncated JPEG", image("JPEG", size=(400, 300))[:600], "image/jpeg", 400),
        Case("text sent as image/jpeg", b"hello, this is not a picture", "image/jpeg", 400),
        Case("HTML sent as image/jpeg", b"<!doctype html><html><body>nope</body></html>", "image/jpeg", 400),
        Case("PNG with a corrupt body", image("PNG")[:40] + b"\x00" * 200, "image/png", 400),
        # valid but odd images: answered
        Case("1x1 JPEG", image("JPEG", size=(1, 1)), "image/jpeg", 200),
        Case("16-bit grayscale PNG", sixteen_bit_png(), "image/png", 200),
        Case("palette PNG with alpha", palette_with_alpha_png(), "image/png", 200),
        Case("RGBA PNG", image("PNG", "RGBA"), "image/png", 200),
        Case("CMYK JPEG", image("JPEG", "CMYK"), "image/jpeg", 200),
        Case("grayscale JPEG", image("JPEG", "L"), "image/jpeg", 200),
        Case("EXIF-rotated JPEG", exif_rotated_jpeg(), "image/jpeg", 200),
        Case("animated GIF", animated_gif(), "image/gif", 200),
        Case("multi-page TIFF", multipage_tiff(), "image/tiff", 200),
        Case("WebP", image("WEBP"), "image/webp", 200),
        Case("BMP", image("BMP"), "image/bmp", 200),
        Case("PNG sent as image/jpeg", image("PNG"), "image/jpeg", 415),
        Case("PNG sent as application/x-image", image("PNG"), "application/x-image", 200),
        Case("content type with parameters", jpeg, "Image/JPEG; charset=binary", 200),
        # over the caps
        Case("20000x20000 pixels in ~50 KB", pixel_bomb_png(), "image/png", 413),
        # within the pixel cap, but resizing the shorter side to the model's asks for gigabytes
        Case("16x2500000 pixels in ~7 KB", pixel_bomb_png(16, 2_500_000), "image/png", 413),
        Case("2500000x16 pixels in ~7 KB", pixel_bomb_png(2_500_000, 16), "image/png", 413),
        # each image at the per-image cap: 64 of them would be 10 GB of RGB
        Case("64 PNGs of 6324x6324 in one batch", instances(*[pixel_bomb_png(6324)] * 64), "application/json", 413),
        Case("body over the payload cap", b"\xff" * (max_payload_bytes + 1024), "image/jpeg", 413),
        # content and accept types
        Case("wrong content type", jpeg, "text/plain", 415),
        Case("missing content type", jpeg, None, 415),
        Case("JPEG as application/octet-stream (the SageMaker SDK's default)", jpeg, "application/octet-stream", 200),
        Case("PNG as application/octet-stream", image("PNG"), "application/octet-stream", 200),
        Case("text as application/octet-stream", b"just some words", "application/octet-stream", 415),
        Case("form content type (curl's default)", b"a=b&c=d", "application/x-www-form-urlencoded", 415),
        Case("unsupported accept", jpeg, "image/jpeg", 406, {"Accept": "text/csv"}),
        Case("accept wildcard", jpeg, "image/jpeg", 200, {"Accept": "text/html, */*;q=0.1"}),
        Case("numpy accept", jpeg, "image/jpeg", 200, {"Accept": "application/x-npy"}),
        # JSON batches
        Case("malformed JSON", b"{\"instances\": [", "application/json", 400),
        Case("JSON that is a list", b"[1, 2, 3]", "application/json", 400),
        Case("bad base64", b"{\"instances\": [{\"b64\": \"***\"}]}", "application/json", 400),
        Case("base64 of text", instances(b"not an image"), "application/json", 400),
        Case("instance without b64", b"{\"instances\": [{\"url\": \"http://169.254.169.254/\"}]}",
             "application/json", 400),
        Case("empty instances list", b"{\"instances\": []}", "application/json", 400),
        Case("a thousand instances", instances(*[b"\xff\xd8"] * 1000), "application/json", 413),
        Case(f"{max_instances} instances (the cap)", instances(*[jpeg] * max_instances), "application/json", 200),
        Case("JSON in Latin-1", "{\"instances\": \"é\"}".encode("latin-1"), "application/json", 400),
        Case("JSON nested 200,000 deep", b"[" * 200_000 + b"]" * 200_000, "application/json", 400),
        Case("JSON with a 5,000-digit number", b"{\"instances\": " + b"7" * 5000 + b"}", "application/json", 400),
        # custom attributes
        Case("top_k=0", jpeg, "image/jpeg", 400, {CUSTOM_ATTRIBUTES: "top_k=0"}),
        Case("top_k=-1", jpeg, "image/jpeg", 400, {CUSTOM_ATTRIBUTES: "top_k=-1"}),
        Case("top_k=abc", jpeg, "image/jpeg", 400, {CUSTOM_ATTRIBUTES: "top_k=abc"}),
        Case("top_k huge", jpeg, "image/jpeg", 200, {CUSTOM_ATTRIBUTES: "top_k=99999999999999999999"}),
        Case("top_k of 5,000 digits", jpeg, "image/jpeg", 200, {CUSTOM_ATTRIBUTES: "top_k=" + "9" * 5000}),
        Case("top_k a Unicode digit", jpeg, "image/jpeg", 400, {CUSTOM_ATTRIBUTES: "top_k=\u00b2"}),
        Case("other attributes only", jpeg, "image/jpeg", 200, {CUSTOM_ATTRIBUTES: "trace=abc, model=x"}),
        # decoders the endpoint does not document: refused before any decoding, whatever the type says
        *(Case(f"{fmt} sent as {kind}", data, kind, 400)
          for fmt in UNDOCUMENTED_FORMATS if (data := undocumented_format(fmt)) is not None
          for kind in ("image/jpeg", "application/x-image")),
    ]


def problem_with(case: Case, status: int, content_type: str, payload: bytes) -> str | None:
    """What is wrong with the endpoint's answer to a case (None: it is the documented answer)."""
    if status != case.status:
        return f"status {status}, expected {case.status}: {payload[:200]!r}"
    if case.headers.get("Accept") == "application/x-npy":
        return None if content_type.startswith("application/x-npy") else f"content type {content_type}"
    if not content_type.startswith("application/json"):
        return f"content type {content_type}, expected application/json"
    try:
        document = json.loads(payload)
    except ValueError:
        return f"body is not JSON: {payload[:200]!r}"
    if status != 200:
        error = document.get("error") if isinstance(document, dict) else None
        if not isinstance(error, str) or not error:
            return f"no JSON error message: {document!r}"
        if "Traceback" in error or 'File "' in error:
            return f"a traceback in the error: {error[:200]}"
        return None
    answers = document if isinstance(document, list) else [document]
    if not answers or not all(isinstance(a, dict) and "label" in a and a["top_k"] for a in answers):
        return f"no prediction in the answer: {payload[:200]!r}"
    return None
