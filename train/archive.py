"""Unpacking a model.tar.gz that a channel delivers (SageMaker hands over an S3 object as that file).

Only regular files and folders with relative names are taken: no links, devices or paths out of
the destination, checked member by member, plus tarfile's own `data` filter where this Python
has it (3.11.4+; Debian bookworm's 3.11.2, the training image's, does not).
"""

from __future__ import annotations

import tarfile
from pathlib import Path

from train.errors import TrainingError

_DATA_FILTER = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}


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
    return members
