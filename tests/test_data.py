"""Data discovery and decoding: class names, class-set checks, every image mode, broken files."""

import io

import numpy as np
import pytest
from PIL import Image

from imaging import load_rgb
from train.data import EpochSampler, check_class_sets, class_name, scan_split
from train.errors import TrainingError


@pytest.mark.parametrize("folder, name", [("001.Affenpinscher", "Affenpinscher"),
                                          ("042.Cairn_terrier", "Cairn terrier"),
                                          ("Beagle", "Beagle"), ("123", "123")])
def test_class_names_from_folder_names(folder, name):
    assert class_name(folder) == name


def make_classes(root, names, images_per_class=1):
    for name in names:
        (root / name).mkdir(parents=True)
        for i in range(images_per_class):
            Image.new("RGB", (40, 30), (i * 20 % 255, 10, 10)).save(root / name / f"{i}.jpg")
    return root


def test_class_sets_must_match_and_the_error_names_the_difference(tmp_path):
    train = make_classes(tmp_path / "train", ["001.A", "002.B", "003.C"])
    valid = make_classes(tmp_path / "valid", ["001.A", "002.B", "004.D"])
    with pytest.raises(TrainingError) as error:
        check_class_sets({"train": train, "valid": valid})
    message = str(error.value)
    assert "only in valid: 004.D" in message and "only in train: 003.C" in message


def test_output_order_is_the_sorted_folder_order(tmp_path):
    train = make_classes(tmp_path / "train", ["010.J", "002.B", "001.A"])
    valid = make_classes(tmp_path / "valid", ["001.A", "010.J", "002.B"])
    assert check_class_sets({"train": train, "valid": valid}) == ["001.A", "002.B", "010.J"]


def encoded(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def gradient(mode="RGB", size=(64, 48)):
    array = np.linspace(0, 255, size[0] * size[1] * 3).reshape(size[1], size[0], 3).astype(np.uint8)
    return Image.fromarray(array, "RGB").convert(mode)


@pytest.mark.parametrize("name, data", [
    ("gray.jpg", encoded(gradient("L"), "JPEG")),
    ("palette.png", encoded(gradient("P"), "PNG")),
    ("palette_alpha.png", encoded(gradient("P"), "PNG", transparency=0)),
    ("rgba.png", encoded(gradient("RGBA"), "PNG")),
    ("la.png", encoded(gradient("LA"), "PNG")),
    ("cmyk.jpg", encoded(gradient("CMYK"), "JPEG")),
    ("sixteen.png", encoded(Image.fromarray((np.arange(64 * 48).reshape(48, 64) * 21).astype(np.uint16)), "PNG")),
    ("float.tif", encoded(Image.fromarray(np.full((48, 64), 300.5, dtype=np.float32)), "TIFF")),
    ("photo.webp", encoded(gradient(), "WEBP")),
    ("still.gif", encoded(gradient("P"), "GIF")),
    ("bitmap.bmp", encoded(gradient(), "BMP")),
])
def test_any_mode_becomes_rgb(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    image = load_rgb(path)
    assert image.mode == "RGB" and image.size == (64, 48)


def test_sixteen_bit_is_scaled_not_clipped(tmp_path):
    path = tmp_path / "sixteen.png"
    path.write_bytes(encoded(Image.fromarray(np.full((8, 8), 32896, dtype=np.uint16)), "PNG"))  # mid-grey
    assert load_rgb(path).getpixel((0, 0)) == (128, 128, 128)


def test_transparent_pixels_show_on_white(tmp_path):
    path = tmp_path / "clear.png"
    path.write_bytes(encoded(Image.new("RGBA", (8, 8), (0, 0, 0, 0)), "PNG"))
    assert load_rgb(path).getpixel((0, 0)) == (255, 255, 255)


def test_exif_orientation_is_honoured(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 clockwise to display
    path = tmp_path / "rotated.jpg"
    path.write_bytes(encoded(Image.new("RGB", (60, 20)), "JPEG", exif=exif))
    assert load_rgb(path).size == (20, 60)


def test_jpeg_decodes_at_reduced_scale_but_never_below_the_requested_side(tmp_path):
    path = tmp_path / "big.jpg"
    path.write_bytes(encoded(gradient(size=(2400, 1800)), "JPEG"))
    image = load_rgb(path, min_side=256)
    assert image.size == (600, 450)  # 1/4 scale; 1/8 would give 225 < 256
    assert load_rgb(path).size == (2400, 1800)


def test_broken_files_are_skipped_counted_and_listed(tmp_path):
    root = make_classes(tmp_path / "train", ["001.A", "002.B"], images_per_class=30)
    whole = encoded(gradient(size=(200, 150)), "JPEG")
    (root / "001.A" / "empty.jpg").write_bytes(b"")
    (root / "001.A" / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    (root / "002.B" / "notes.jpg").write_text("not an image")
    (root / "002.B" / ".DS_Store").write_bytes(b"\0\0")  # hidden files are not data
    split = scan_split("train", root, ["001.A", "002.B"], threads=2)
    assert len(split.samples) == 60 and split.num_files == 63
    reasons = {p.path.rsplit("/", 1)[-1]: p.reason for p in split.skipped}
    assert reasons["empty.jpg"] == "empty file"
    assert "truncated" in reasons["truncated.jpg"]
    assert "cannot identify" in reasons["notes.jpg"]


def test_too_many_unreadable_files_fail_the_split_with_a_reason(tmp_path):
    root = make_classes(tmp_path / "valid", ["001.A", "002.B"], images_per_class=9)
    (root / "001.A" / "bad.jpg").write_text("nope")  # 1 of 19: 5.3% > 5%
    with pytest.raises(TrainingError, match=r"valid split: 1 of 19 files \(5%\) are unreadable"):
        scan_split("valid", root, ["001.A", "002.B"], threads=1)


def test_epoch_sampler_is_deterministic_resumable_and_sharded():
    sampler = EpochSampler(10, shuffle=True, seed=3)
    sampler.set_epoch(2)
    full = list(sampler)
    assert sorted(full) == list(range(10)) and list(sampler) == full
    sampler.set_epoch(2, skip_samples=4)
    assert list(sampler) == full[4:] and len(sampler) == 6
    sampler.set_epoch(3)
    assert list(sampler) != full
    shards = [EpochSampler(10, shuffle=True, seed=3, rank=r, world_size=3) for r in range(3)]
    for shard in shards:
        shard.set_epoch(2)
    assert {len(s) for s in shards} == {4}  # padded: DDP ranks take equal steps
    assert set().union(*map(set, shards)) == set(range(10))
    evals = [EpochSampler(10, shuffle=False, seed=0, rank=r, world_size=3) for r in range(3)]
    assert sorted(i for s in evals for i in s) == list(range(10))  # eval: every image exactly once
