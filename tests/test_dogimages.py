"""The dogImages downloader, against an archive the test makes and serves on loopback."""

import functools
import http.server
import threading
import zipfile

import pytest

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
