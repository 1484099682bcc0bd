"""Requests in, responses out: content types, accept types, custom attributes, and the 4xx they earn.

Every problem with a request raises RequestError with the HTTP status and a message that
says what was wrong and what is accepted; the handler turns it into a JSON body.
"""

from __future__ import annotations

import base64
import binascii
import io
import json

import numpy as np
from PIL import Image, UnidentifiedImageError

from imaging import ImageTooLarge, load_rgb

IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp", "image/gif", "image/bmp", "image/tiff",
               "application/x-image")
JSON = "application/json"
NPY = "application/x-npy"
# What the SageMaker SDK's default Predictor serializer sends: served when the bytes say it is an image.
OCTET_STREAM = "application/octet-stream"
# The first bytes of each format Pillow decodes here (RIFF....WEBP is checked apart).
_SIGNATURES = ((b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"GIF87a", "GIF"), (b"GIF89a", "GIF"),
               (b"BM", "BMP"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"))
_ACCEPTED = (f"send one of {', '.join(IMAGE_TYPES)}, {OCTET_STREAM} (an image's bytes) "
             f"or {JSON} with {{\"instances\": [{{\"b64\": \"...\"}}]}}")
ACCEPT_TYPES = (JSON, NPY)
CUSTOM_ATTRIBUTES_HEADER = "X-Amzn-SageMaker-Custom-Attributes"


class RequestError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def media_type(header: str | None) -> str:
    """'Image/JPEG; charset=x' -> 'image/jpeg'."""
    return (header or "").split(";", 1)[0].strip().lower()


def choose_accept(header: str | None, default: str) -> str:
    """The first supported type in Accept (which may list several, with q-values), else 406."""
    if not header or not header.strip():
        return default
    offered = [media_type(part) for part in header.split(",")]
    for kind in offered:
        if kind in ("*/*", "application/*"):
            return default
        if kind in ACCEPT_TYPES:
            return kind
    raise RequestError(406, f"cannot answer with {header!r}; supported Accept types: {', '.join(ACCEPT_TYPES)}")


def parse_top_k(header: str | None, num_classes: int, default: int) -> int:
    """top_k from SageMaker custom attributes, e.g. 'top_k=3' (other attributes are ignored)."""
    if not header:
        return min(default, num_classes)
    for attribute in header.replace(";", ",").split(","):
        key, _, value = attribute.partition("=")
        if key.strip().lower() != "top_k":
            continue
        value = value.strip()
        if not value.isdigit() or int(value) < 1:
            raise RequestError(400, f"custom attribute top_k must be a whole number >= 1, got {value!r}")
        return min(int(value), num_classes)
    return min(default, num_classes)


def decode_images(body: bytes, content_type: str, max_payload_bytes: int, max_pixels: int, max_instances: int,
                  min_side: int | None) -> tuple[list[Image.Image], bool]:
    """(RGB images, whether the request was a batch)."""
    if content_type not in (*IMAGE_TYPES, JSON, OCTET_STREAM):
        shown = content_type or "no Content-Type"
        raise RequestError(415, f"unsupported content type {shown!r}; {_ACCEPTED}")
    if len(body) > max_payload_bytes:
        raise RequestError(413, f"request body is {len(body):,} bytes, more than the {max_payload_bytes:,} allowed")
    if not body:
        raise RequestError(400, "request body is empty; send an image, or JSON {\"instances\": [{\"b64\": ...}]}")
    if content_type == OCTET_STREAM and sniff_image_format(body) is None:
        raise RequestError(415, f"{OCTET_STREAM} body does not start like a JPEG, PNG, WebP, GIF, BMP or TIFF "
                                f"image; {_ACCEPTED}")
    if content_type == JSON:
        return [decode_image(data, max_pixels, min_side, index) for index, data in
                enumerate(_instances(body, max_instances))], True
    return [decode_image(body, max_pixels, min_side)], False


def sniff_image_format(data: bytes) -> str | None:
    """The image format the first bytes announce (the header is a claim; the decoder still checks the rest)."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return next((name for signature, name in _SIGNATURES if data.startswith(signature)), None)


def _instances(body: bytes, max_instances: int) -> list[bytes]:
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RequestError(400, f"body is not valid JSON: {error}") from None
    instances = document.get("instances") if isinstance(document, dict) else None
    if not isinstance(instances, list) or not instances:
        raise RequestError(400, "JSON body must be {\"instances\": [{\"b64\": \"<base64 image>\"}, ...]} "
                                "with at least one instance")
    if len(instances) > max_instances:
        raise RequestError(413, f"{len(instances)} instances in one request, more than the {max_instances} allowed")
    decoded = []
    for index, instance in enumerate(instances):
        data = instance.get("b64") if isinstance(instance, dict) else None
        if not isinstance(data, str):
            raise RequestError(400, f"instances[{index}] must be an object with a \"b64\" string")
        try:
            decoded.append(base64.b64decode(data, validate=True))
        except (binascii.Error, ValueError):
            raise RequestError(400, f"instances[{index}].b64 is not valid base64") from None
    return decoded


def decode_image(data: bytes, max_pixels: int, min_side: int | None, index: int | None = None) -> Image.Image:
    where = "image" if index is None else f"instances[{index}]"
    if not data:
        raise RequestError(400, f"{where} is empty")
    try:
        return load_rgb(io.BytesIO(data), min_side=min_side, max_pixels=max_pixels)
    except (ImageTooLarge, Image.DecompressionBombError) as error:
        raise RequestError(413, f"{where}: {error}") from None
    except UnidentifiedImageError:
        raise RequestError(400, f"{where} is not a decodable image (JPEG, PNG, WebP, GIF, BMP, TIFF)") from None
    except (OSError, ValueError, SyntaxError) as error:  # truncated or corrupt data
        raise RequestError(400, f"{where} could not be decoded: {error}") from None


def encode(probabilities: np.ndarray, classes: list[str], accept: str, top_k: int, batch: bool) -> bytes:
    if accept == NPY:
        buffer = io.BytesIO()
        np.save(buffer, probabilities.astype(np.float32), allow_pickle=False)
        return buffer.getvalue()
    answers = [_answer(row, classes, top_k) for row in probabilities]
    return json.dumps(answers if batch else answers[0]).encode()


def _answer(row: np.ndarray, classes: list[str], top_k: int) -> dict:
    order = np.argsort(-row, kind="stable")[:top_k]
    top = [{"label": classes[i], "index": int(i), "probability": float(row[i])} for i in order]
    return {"label": top[0]["label"], "index": top[0]["index"], "probability": top[0]["probability"], "top_k": top}


def error_body(message: str) -> bytes:
    return json.dumps({"error": message}).encode()
