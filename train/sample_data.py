"""`python -m train.sample_data OUT`: a small dataset in the dogImages layout, made here, no download.

Each class is a coloured shape on a noisy background, so a network learns it in a few
minutes on two CPU cores. The files vary the way real uploads do: sizes from thumbnails
to 640 px, JPEG and PNG and BMP, grayscale, palette, RGBA, CMYK and 16-bit images,
EXIF-rotated photos, and a few broken files (empty, truncated, not an image) that the
training job must skip and report.
"""

from __future__ import annotations

import argparse
import io
import math
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CLASSES = (
    ("Red_Disc", (210, 40, 40), "disc"),
    ("Green_Square", (40, 170, 60), "square"),
    ("Blue_Triangle", (40, 70, 210), "triangle"),
    ("Yellow_Stripes", (230, 200, 40), "stripes"),
    ("Purple_Ring", (140, 50, 170), "ring"),
    ("Orange_Cross", (240, 130, 30), "cross"),
)
SPLIT_SIZES = {"train": 40, "valid": 10, "test": 10}


def draw_example(rng: np.random.Generator, color, shape: str) -> Image.Image:
    width = int(rng.integers(64, 640))
    height = int(np.clip(width * rng.uniform(0.6, 1.5), 48, 640))
    # Blotchy low-frequency clutter: hard enough to need the shape and colour, cheap to store.
    base = rng.integers(60, 200, size=3)
    coarse = np.clip(base + rng.normal(0, 35, size=(max(2, height // 16), max(2, width // 16), 3)), 0, 255)
    image = Image.fromarray(coarse.astype(np.uint8), "RGB").resize((width, height), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(image)
    jitter = rng.integers(-25, 26, size=3)
    fill = tuple(int(c) for c in np.clip(np.array(color) + jitter, 0, 255))
    side = min(width, height)
    radius = side * rng.uniform(0.2, 0.4)
    cx = rng.uniform(radius, width - radius)
    cy = rng.uniform(radius, height - radius)
    box = (cx - radius, cy - radius, cx + radius, cy + radius)
    if shape == "disc":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    elif shape == "triangle":
        angle = rng.uniform(0, 2 * math.pi)
        points = [(cx + radius * math.cos(angle + k * 2 * math.pi / 3),
                   cy + radius * math.sin(angle + k * 2 * math.pi / 3)) for k in range(3)]
        draw.polygon(points, fill=fill)
    elif shape == "stripes":
        step = max(4, int(radius / 3))
        for x in range(int(cx - radius), int(cx + radius), 2 * step):
            draw.rectangle((x, cy - radius, x + step, cy + radius), fill=fill)
    elif shape == "ring":
        draw.ellipse(box, outline=fill, width=max(3, int(radius / 3)))
    elif shape == "cross":
        arm = radius / 3
        draw.rectangle((cx - radius, cy - arm, cx + radius, cy + arm), fill=fill)
        draw.rectangle((cx - arm, cy - radius, cx + arm, cy + radius), fill=fill)
    return image


def encode(image: Image.Image, kind: int) -> tuple[bytes, str]:
    """Rotate through the formats and modes users' photo folders contain."""
    buffer = io.BytesIO()
    variant = kind % 10
    if variant == 1:
        image.save(buffer, "PNG")
        return buffer.getvalue(), ".png"
    if variant == 2:
        image.convert("P", palette=Image.Palette.ADAPTIVE).save(buffer, "PNG")
        return buffer.getvalue(), ".png"
    if variant == 3:
        rgba = image.convert("RGBA")
        rgba.putalpha(255)
        rgba.save(buffer, "PNG")
        return buffer.getvalue(), ".png"
    if variant == 4:
        image.convert("CMYK").save(buffer, "JPEG", quality=90)
        return buffer.getvalue(), ".jpg"
    if variant == 5:
        # EXIF says "rotate 90": the stored pixels are turned the other way, as a phone camera does.
        exif = Image.Exif()
        exif[0x0112] = 6
        image.transpose(Image.Transpose.ROTATE_90).save(buffer, "JPEG", quality=88, exif=exif)
        return buffer.getvalue(), ".jpg"
    if variant == 6:
        image.save(buffer, "BMP")
        return buffer.getvalue(), ".bmp"
    if variant == 7:
        sixteen = (np.asarray(image.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
        Image.fromarray(sixteen).save(buffer, "PNG")
        return buffer.getvalue(), ".png"
    image.save(buffer, "JPEG", quality=70 + 3 * variant)
    return buffer.getvalue(), ".jpg"


def write_broken_files(train_dir: Path, folders: list[str], rng: np.random.Generator) -> list[Path]:
    paths = []
    empty = train_dir / folders[0] / "broken_empty.jpg"
    empty.write_bytes(b"")
    paths.append(empty)
    whole, _ = encode(draw_example(rng, (128, 128, 128), "disc"), 0)
    truncated = train_dir / folders[1 % len(folders)] / "broken_truncated.jpg"
    truncated.write_bytes(whole[: len(whole) // 3])
    paths.append(truncated)
    text = train_dir / folders[2 % len(folders)] / "broken_not_an_image.jpg"
    text.write_text("this is a text file with a .jpg name\n")
    paths.append(text)
    return paths


def make_sample_dataset(root: Path, num_classes: int = 4, sizes: dict[str, int] | None = None,
                        seed: int = 0, broken: bool = True) -> Path:
    if not 2 <= num_classes <= len(CLASSES):
        raise ValueError(f"num_classes must be between 2 and {len(CLASSES)}")
    sizes = sizes or SPLIT_SIZES
    rng = np.random.default_rng(seed)
    folders = [f"{i + 1:03d}.{name}" for i, (name, _, _) in enumerate(CLASSES[:num_classes])]
    for split, count in sizes.items():
        for folder, (_, color, shape) in zip(folders, CLASSES[:num_classes], strict=True):
            directory = root / split / folder
            directory.mkdir(parents=True, exist_ok=True)
            for index in range(count):
                data, suffix = encode(draw_example(rng, color, shape), index)
                (directory / f"{folder.split('.', 1)[1]}_{index:04d}{suffix}").write_bytes(data)
    if broken:
        write_broken_files(root / "train", folders, rng)
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.sample_data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="folder to create (gets train/ valid/ test/)")
    parser.add_argument("--classes", type=int, default=4, help=f"2..{len(CLASSES)}")
    parser.add_argument("--train-per-class", type=int, default=SPLIT_SIZES["train"])
    parser.add_argument("--valid-per-class", type=int, default=SPLIT_SIZES["valid"])
    parser.add_argument("--test-per-class", type=int, default=SPLIT_SIZES["test"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.out.exists() and any(args.out.iterdir()):
        parser.error(f"{args.out} exists and is not empty; choose a new folder")
    if not 2 <= args.classes <= len(CLASSES):
        parser.error(f"--classes must be between 2 and {len(CLASSES)}")
    sizes = {"train": args.train_per_class, "valid": args.valid_per_class, "test": args.test_per_class}
    make_sample_dataset(args.out, args.classes, sizes, args.seed)
    print(f"sample dataset written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
