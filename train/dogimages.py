"""`python -m train.dogimages DEST`: download and unpack the dog-breed dataset (dogImages.zip).

The archive holds dogImages/{train,valid,test}/NNN.Breed_Name/*.jpg (133 breeds, 8,351
JPEGs, ~1.1 GB). It is unpacked into a temporary folder next to DEST and renamed into
place only once complete and checked, so an interrupted download never leaves a
half-dataset that a training job would silently train on.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path

DOG_IMAGES_URL = "https://s3-us-west-1.amazonaws.com/udacity-aind/dog-project/dogImages.zip"
SPLITS = ("train", "valid", "test")
_CHUNK = 1 << 20


class DownloadError(Exception):
    pass


def download_file(url: str, destination: Path, timeout: float = 60.0) -> Path:
    with urllib.request.urlopen(url, timeout=timeout) as response, open(destination, "wb") as out:
        expected = response.headers.get("Content-Length")
        written = 0
        while chunk := response.read(_CHUNK):
            out.write(chunk)
            written += len(chunk)
    if expected is not None and written != int(expected):
        raise DownloadError(f"download from {url} ended after {written} of {expected} bytes")
    return destination


def safe_extract(archive: Path, target: Path) -> None:
    """Unzip, refusing members that would land outside `target` (zip slip)."""
    root = target.resolve()
    with zipfile.ZipFile(archive) as bundle:
        for member in bundle.infolist():
            destination = (target / member.filename).resolve()
            if not destination.is_relative_to(root):
                raise DownloadError(f"archive member {member.filename!r} points outside the target folder")
        bundle.extractall(target)


def find_dataset_root(extracted: Path) -> Path:
    """The folder holding train/ valid/ test/ (dogImages.zip nests them under dogImages/)."""
    for candidate in [extracted, *sorted(p for p in extracted.rglob("*") if p.is_dir())]:
        if all((candidate / split).is_dir() for split in SPLITS):
            return candidate
    raise DownloadError(f"the archive has no folder holding {', '.join(s + '/' for s in SPLITS)}")


def fetch_dataset(destination: Path, url: str = DOG_IMAGES_URL, force: bool = False) -> Path:
    if destination.exists():
        if not force and all((destination / split).is_dir() for split in SPLITS):
            return destination
        if not force:
            raise DownloadError(f"{destination} exists but does not hold {'/, '.join(SPLITS)}/; use --force")
        shutil.rmtree(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".dogimages-", dir=destination.parent) as work:
        work_dir = Path(work)
        archive = download_file(url, work_dir / "archive.zip")
        try:
            safe_extract(archive, work_dir / "extracted")
        except zipfile.BadZipFile as error:
            raise DownloadError(f"{url} is not a valid zip archive: {error}") from error
        archive.unlink()
        find_dataset_root(work_dir / "extracted").rename(destination)
    return destination


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.dogimages", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("destination", type=Path, help="folder to create, e.g. data/dogImages")
    parser.add_argument("--url", default=DOG_IMAGES_URL, help="archive URL (default: the public dogImages.zip)")
    parser.add_argument("--force", action="store_true", help="replace DESTINATION if it exists")
    args = parser.parse_args(argv)
    try:
        path = fetch_dataset(args.destination, args.url, args.force)
    except (DownloadError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    counts = {split: sum(1 for p in (path / split).rglob("*") if p.is_file()) for split in SPLITS}
    print(f"dataset ready in {path}: " + ", ".join(f"{k} {v} files" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
