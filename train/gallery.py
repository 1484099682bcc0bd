"""The test images the shipped model got wrong, most confident first, as thumbnails for report.html.

A confident mistake says more than a hesitant one: a mislabelled photo, two breeds the data cannot
tell apart, a photo of something else. Thumbnails are small JPEGs embedded in the report (it stays
one file), decoded with the training side's own bounded decoder; a file that cannot be read again
(a features-only trial job has no images) is listed without one.
"""

from __future__ import annotations

import base64
import dataclasses
import io
from pathlib import Path

import torch

from imaging import load_rgb

MAX_SHOWN = 24  # the report's gallery; the count of all mistakes is given beside it
THUMBNAIL_PX = 112


@dataclasses.dataclass(frozen=True)
class Mistake:
    file: str  # relative to its split's folder: class folder / file name
    true_class: str
    predicted_class: str
    probability: float  # the model's probability of its (wrong) answer
    thumbnail: str | None  # base64 JPEG, THUMBNAIL_PX on the longer side


def worst_mistakes(samples: list[tuple[Path, int]], predictions: torch.Tensor, classes: list[str],
                   limit: int = MAX_SHOWN) -> tuple[list[Mistake], int]:
    """(the `limit` most confident mistakes, how many there were): `predictions` is (images, 2), the
    predicted class and its probability, in the order of `samples`."""
    if predictions is None or len(predictions) != len(samples):
        return [], 0
    wrong = [(float(probability), index) for index, ((_, label), (predicted, probability))
             in enumerate(zip(samples, predictions.tolist(), strict=True)) if int(predicted) != label]
    wrong.sort(key=lambda pair: (-pair[0], pair[1]))
    shown = []
    for probability, index in wrong[:limit]:
        path, label = samples[index]
        predicted = int(predictions[index, 0])
        shown.append(Mistake(f"{path.parent.name}/{path.name}", classes[label], classes[predicted], probability,
                             thumbnail(path)))
    return shown, len(wrong)


def thumbnail(path: Path) -> str | None:
    try:
        image = load_rgb(path, min_side=THUMBNAIL_PX)
    except Exception:  # noqa: BLE001 - gone since training read it, or unreadable: listed without a picture
        return None
    image.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=80)
    return base64.b64encode(buffer.getvalue()).decode()
