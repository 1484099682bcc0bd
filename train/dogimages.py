"""`python -m train.dogimages DEST`: download and unpack the dog-breed dataset (dogImages.zip).

The archive holds dogImages/{train,valid,test}/NNN.Breed_Name/*.jpg (133 breeds, 8,351
JPEGs, ~1.1 GB). It is downloaded (at most MAX_DOWNLOAD_BYTES, its SHA-256 printed and, with
--sha256, checked) and unpacked (members checked against train/archive.py's caps first) into a
temporary folder next to DEST, and renamed into place only once complete and checked, so an
interrupted or bad download never leaves a half-dataset that a training job would silently
train on; with --force the old DEST is replaced only then.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path

from train.archive import check_budget

DOG_IMAGES_URL = "https://s3-us-west-1.amazonaws.com/udacity-aind/dog-project/dogImages.zip"
SPLITS = ("train", "valid", "test")
_CHUNK = 1 << 20
MAX_DOWNLOAD_BYTES = 4 << 30  # dogImages.zip is ~1.1 GB


class DownloadError(Exception):
    pass


def download_file(url: str, destination: Path, timeout: float = 60.0, sha256: str | None = None) -> str:
    """Download to `destination`; the SHA-256 of what arrived (DownloadError if it differs from `sha256`)."""
    max_bytes = MAX_DOWNLOAD_BYTES
    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=timeout) as response, open(destination, "wb") as out:
        expected = response.headers.get("Content-Length")
        if expected is not None and int(expected) > max_bytes:
            raise DownloadError(f"{url} is {int(expected):,} bytes, more than the {max_bytes:,} allowed")
        written = 0
        while chunk := response.read(_CHUNK):
            written += len(chunk)
            if written > max_bytes:
                raise DownloadError(f"{url} sent more than the {max_bytes:,} bytes allowed")
            out.write(chunk)
            digest.update(chunk)
    if expected is not None and written != int(expected):
        raise DownloadError(f"download from {url} ended after {written} of {expected} bytes")
    if sha256 is not None and digest.hexdigest() != sha256.lower():
        raise DownloadError(f"{url} has SHA-256 {digest.hexdigest()}, not the {sha256} expected (--sha256): "
                            "not unpacked")
    return digest.hexdigest()


def safe_extract(archive: Path, target: Path) -> None:
    """Unzip, refusing members that would land outside `target` (zip slip) and archives over the caps."""
    root = target.resolve()
    with zipfile.ZipFile(archive) as bundle:
        members = bundle.infolist()
        for member in members:
            destination = (target / member.filename).resolve()
            if not destination.is_relative_to(root):
                raise DownloadError(f"archive member {member.filename!r} points outside the target folder")
        too_large = check_budget([member.file_size for member in members], archive)
        if too_large:
            raise DownloadError(too_large)
        bundle.extractall(target)


def find_dataset_root(extracted: Path) -> Path:
    """The folder holding train/ valid/ test/ (dogImages.zip nests them under dogImages/)."""
    for candidate in [extracted, *sorted(p for p in extracted.rglob("*") if p.is_dir())]:
        if all((candidate / split).is_dir() for split in SPLITS):
            return candidate
    raise DownloadError(f"the archive has no folder holding {', '.join(s + '/' for s in SPLITS)}")


def fetch_dataset(destination: Path, url: str = DOG_IMAGES_URL, force: bool = False,
                  sha256: str | None = None) -> Path:
    if destination.exists():
        if not force and all((destination / split).is_dir() for split in SPLITS):
            return destination
        if not force:
            raise DownloadError(f"{destination} exists but does not hold {'/, '.join(SPLITS)}/; use --force")
    destination.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".dogimages-", dir=destination.parent) as work:
        work_dir = Path(work)
        archive = work_dir / "archive.zip"
        digest = download_file(url, archive, sha256=sha256)
        print(f"downloaded {url}: SHA-256 {digest}")
        try:
            safe_extract(archive, work_dir / "extracted")
        except zipfile.BadZipFile as error:
            raise DownloadError(f"{url} is not a valid zip archive: {error}") from error
        archive.unlink()
        dataset = find_dataset_root(work_dir / "extracted")
        if destination.exists():  # --force: the old dataset goes only now that the new one is complete
            destination.rename(work_dir / "previous")
        dataset.rename(destination)
    return destination


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.dogimages", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("destination", type=Path, help="folder to create, e.g. data/dogImages")
    parser.add_argument("--url", default=DOG_IMAGES_URL, help="archive URL (default: the public dogImages.zip)")
    parser.add_argument("--force", action="store_true",
                        help="replace DESTINATION if it exists (once the new download is complete and checked)")
    parser.add_argument("--sha256", help="the archive's expected SHA-256: anything else is not unpacked (the "
                                         "download prints what arrived)")
    args = parser.parse_args(argv)
    try:
        path = fetch_dataset(args.destination, args.url, args.force, args.sha256)
    except (DownloadError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    counts = {split: sum(1 for p in (path / split).rglob("*") if p.is_file()) for split in SPLITS}
    print(f"dataset ready in {path}: " + ", ".join(f"{k} {v} files" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
