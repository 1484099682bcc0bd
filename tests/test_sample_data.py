"""The demo's embedded dataset: the dogImages layout, varied files, a few broken ones."""

from collections import Counter

from PIL import Image

from train.sample_data import main as sample_main


def test_sample_dataset_layout_formats_and_broken_files(tmp_path):
    assert sample_main([str(tmp_path / "data"), "--classes", "3", "--train-per-class", "10",
                        "--valid-per-class", "2", "--test-per-class", "2"]) == 0
    root = tmp_path / "data"
    assert sorted(p.name for p in (root / "train").iterdir()) == ["001.Red_Disc", "002.Green_Square",
                                                                  "003.Blue_Triangle"]
    files = [p for p in (root / "train").rglob("*") if p.is_file()]
    broken = sorted(p.name for p in files if p.name.startswith("broken_"))
    assert broken == ["broken_empty.jpg", "broken_not_an_image.jpg", "broken_truncated.jpg"]
    modes, formats, sizes = Counter(), Counter(), set()
    for path in files:
        if path.name.startswith("broken_"):
            continue
        with Image.open(path) as image:
            modes[image.mode] += 1
            formats[image.format] += 1
            sizes.add(image.size)
    assert {"RGB", "P", "RGBA", "CMYK", "I;16"} <= set(modes)
    assert {"JPEG", "PNG", "BMP"} <= set(formats)
    assert len(sizes) > 20  # varied sizes
    assert sum(1 for p in (root / "valid").rglob("*") if p.is_file()) == 6


def test_refuses_to_write_into_a_non_empty_folder(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("mine")
    try:
        sample_main([str(tmp_path)])
    except SystemExit as exit_:
        assert exit_.code == 2
    assert "not empty" in capsys.readouterr().err
    assert (tmp_path / "keep.txt").read_text() == "mine"
