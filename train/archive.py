"""Unpacking a model.tar.gz that a channel delivers (SageMaker hands over an S3 object as that file).

Only regular files and folders with relative names are taken: no links, devices or paths out of
the destination, checked member by member, plus tarfile's own `data` filter where this Python
has it (3.11.4+; Debian bookworm's 3.11.2, the training image's, does not). The members' total
size and count are capped before anything is written (check_budget, shared with dogimages.py's zip).
"""

from __future__ import annotations

import tarfile
from pathlib import Path

from train.errors import TrainingError

_DATA_FILTER = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
# A model or feature bundle is a handful of files and at most a few GB (dogImages' features: ~70 MB);
# dogImages.zip unpacks to 1.1 GB in 8,351 files. A small archive that claims more is a bomb.
MAX_UNPACKED_BYTES = 16 << 30
MAX_MEMBERS = 100_000


def check_budget(sizes: list[int], source: Path) -> str | None:
    """Why an archive with members of these sizes is refused (None: it fits), before one byte is written."""
    max_bytes, max_members = MAX_UNPACKED_BYTES, MAX_MEMBERS
    if len(sizes) > max_members:
        return f"{source} holds {len(sizes):,} members, more than the {max_members:,} allowed"
    if sum(sizes) > max_bytes:
        return f"{source} unpacks to {sum(sizes):,} bytes, more than the {max_bytes:,} allowed"
    return None


def unpack(tarball: Path, destination: Path) -> None:
    try:
        with tarfile.open(tarball) as archive:
            archive.extractall(destination, members=_plain_files(archive), **_DATA_FILTER)
    except (tarfile.TarError, OSError) as error:
        raise TrainingError(f"cannot unpack {tarball}: {error}") from error


def _plain_files(archive: tarfile.TarFile) -> list[tarfile.TarInfo]:
    """Regular files and folders with relative names inside the archive: no links, devices or paths out."""
    members = []
    for member in archive.getmembers():
        name = Path(member.name)
        if name.is_absolute() or ".." in name.parts or not (member.isfile() or member.isdir()):
            raise tarfile.TarError(f"refusing member {member.name!r}: only plain files inside the archive")
        members.append(member)
    too_large = check_budget([member.size for member in members], Path(archive.name or "the archive"))
    if too_large:
        raise tarfile.TarError(too_large)
    return members
