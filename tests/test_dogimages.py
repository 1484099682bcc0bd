"""The dogImages downloader, against an archive the test makes and serves on loopback."""

import functools
import hashlib
import http.server
import threading
import zipfile

import pytest

from train import archive, dogimages
from train.dogimages import DownloadError, fetch_dataset
from train.dogimages import main as dogimages_main


@pytest.fixture
def http_root(tmp_path):
    """A real HTTP server on 127.0.0.1 serving tmp_path/www; stopped even when the test fails."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def make_archive(path, members):
    with zipfile.ZipFile(path, "w") as bundle:
        for name, data in members.items():
            bundle.writestr(name, data)


def dog_members():
    return {f"dogImages/{split}/001.Affenpinscher/Affenpinscher_0000{i}.jpg": b"\xff\xd8jpeg"
            for split in ("train", "valid", "test") for i in range(2)}


def test_download_unpacks_the_dogimages_layout(http_root, tmp_path, capsys):
    www, url = http_root
    make_archive(www / "dogImages.zip", dog_members())
    destination = tmp_path / "data" / "dogImages"
    assert dogimages_main([str(destination), "--url", f"{url}/dogImages.zip"]) == 0
    assert (destination / "train" / "001.Affenpinscher" / "Affenpinscher_00000.jpg").read_bytes() == b"\xff\xd8jpeg"
    assert "train 2 files, valid 2 files, test 2 files" in capsys.readouterr().out
    assert [p.name for p in destination.parent.iterdir()] == ["dogImages"]  # no temp folders left
    # A second call finds the dataset and downloads nothing.
    (www / "dogImages.zip").unlink()
    assert fetch_dataset(destination, f"{url}/dogImages.zip") == destination


def test_zip_slip_is_refused_and_nothing_is_left(http_root, tmp_path):
    www, url = http_root
    make_archive(www / "evil.zip", {**dog_members(), "../../escaped.txt": b"x"})
    with pytest.raises(DownloadError, match="outside the target"):
        fetch_dataset(tmp_path / "out" / "dogImages", f"{url}/evil.zip")
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "out" / "dogImages").exists()


def test_errors_name_the_problem(http_root, tmp_path, capsys):
    www, url = http_root
    (www / "notzip.zip").write_text("html error page")
    assert dogimages_main([str(tmp_path / "a"), "--url", f"{url}/notzip.zip"]) == 1
    assert "not a valid zip" in capsys.readouterr().err
    assert dogimages_main([str(tmp_path / "b"), "--url", f"{url}/missing.zip"]) == 1
    assert "404" in capsys.readouterr().err
    make_archive(www / "flat.zip", {"readme.txt": b"hi"})
    assert dogimages_main([str(tmp_path / "c"), "--url", f"{url}/flat.zip"]) == 1
    assert "no folder holding" in capsys.readouterr().err


def test_force_replaces_the_dataset_only_once_the_new_download_is_complete(http_root, tmp_path):
    www, url = http_root
    destination = tmp_path / "data" / "dogImages"
    make_archive(www / "dogImages.zip", dog_members())
    fetch_dataset(destination, f"{url}/dogImages.zip")
    (destination / "train" / "mine.txt").write_text("the old dataset")
    (www / "notzip.zip").write_text("html error page")
    for bad in ("missing.zip", "notzip.zip"):  # a failed download keeps what was there
        with pytest.raises((DownloadError, OSError)):
            fetch_dataset(destination, f"{url}/{bad}", force=True)
        assert (destination / "train" / "mine.txt").read_text() == "the old dataset"
    assert fetch_dataset(destination, f"{url}/dogImages.zip", force=True) == destination
    assert not (destination / "train" / "mine.txt").exists() and (destination / "test").is_dir()
    assert [p.name for p in destination.parent.iterdir()] == ["dogImages"]


def test_a_download_with_another_sha256_is_not_unpacked(http_root, tmp_path, capsys):
    www, url = http_root
    make_archive(www / "dogImages.zip", dog_members())
    digest = hashlib.sha256((www / "dogImages.zip").read_bytes()).hexdigest()
    destination = tmp_path / "dogImages"
    assert dogimages_main([str(destination), "--url", f"{url}/dogImages.zip", "--sha256", "0" * 64]) == 1
    assert f"has SHA-256 {digest}, not the {'0' * 64} expected" in capsys.readouterr().err
    assert not destination.exists()
    assert dogimages_main([str(destination), "--url", f"{url}/dogImages.zip", "--sha256", digest.upper()]) == 0
    assert f"SHA-256 {digest}" in capsys.readouterr().out


@pytest.mark.parametrize("limit, value, message", [
    ("MAX_UNPACKED_BYTES", 1000, "unpacks to 6,000 bytes, more than the 1,000 allowed"),
    ("MAX_MEMBERS", 5, "holds 6 members, more than the 5 allowed")])
def test_a_zip_over_the_unpacking_caps_is_refused_before_anything_is_written(http_root, tmp_path, monkeypatch,
                                                                              limit, value, message):
    # the caps themselves (16 GiB, 100,000 members) lowered: the rule is what is tested, not a 16 GiB file
    monkeypatch.setattr(archive, limit, value)
    www, url = http_root
    make_archive(www / "bomb.zip", {name: b"\0" * 1000 for name in dog_members()})
    with pytest.raises(DownloadError, match=message):
        fetch_dataset(tmp_path / "out" / "dogImages", f"{url}/bomb.zip")
    assert not (tmp_path / "out" / "dogImages").exists() and list((tmp_path / "out").iterdir()) == []


def test_a_download_over_its_cap_stops(http_root, tmp_path, monkeypatch):
    monkeypatch.setattr(dogimages, "MAX_DOWNLOAD_BYTES", 100)
    www, url = http_root
    make_archive(www / "dogImages.zip", dog_members())
    with pytest.raises(DownloadError, match="more than the 100 allowed"):
        fetch_dataset(tmp_path / "dogImages", f"{url}/dogImages.zip")
    assert not (tmp_path / "dogImages").exists()
