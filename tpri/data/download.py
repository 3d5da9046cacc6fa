"""Getting dataset files onto disk: checksum-verified downloads tried mirror by mirror, tar
extraction, and the error raised when files are missing. Every file is written to a temporary
file in its destination folder and renamed when complete, so a path holds either nothing or a
whole, verified file."""

from __future__ import annotations

import hashlib
import logging
import tarfile
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from tpri import io

log = logging.getLogger(__name__)

CHUNK = 1 << 20  # bytes read at a time


class DataFileError(ValueError):
    """A dataset file exists but its content is unusable (corrupt, truncated, wrong format):
    found only when the job reads it, so the job ends with status `failed`."""


def md5sum(path: str | Path) -> str:
    """Hex MD5 digest of a file."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def check_md5(path: str | Path, md5: str) -> None:
    """Raise ValueError (naming the file) unless `path` has MD5 digest `md5`."""
    actual = md5sum(path)
    if actual != md5:
        raise DataFileError(f"{path}: md5 checksum is {actual}, expected {md5} (corrupt or incomplete file)")


def write_atomic(dest: Path, source: BinaryIO, md5: str | None = None) -> None:
    """Copy the stream `source` to `dest` through tpri's atomic writer, checking its MD5 digest
    (when given) before the rename; on any failure no file, partial or temporary, is left."""
    dest.parent.mkdir(parents=True, exist_ok=True)

    def copy(out: BinaryIO) -> None:
        digest = hashlib.md5(usedforsecurity=False)
        for block in iter(lambda: source.read(CHUNK), b""):
            digest.update(block)
            out.write(block)
        if md5 is not None and digest.hexdigest() != md5:
            raise ValueError(
                f"{dest.name}: md5 checksum is {digest.hexdigest()}, expected {md5} "
                "(corrupt or incomplete download)"
            )

    io.write_atomic(dest, copy)


def fetch(urls: Sequence[str], dest: str | Path, md5: str, *, dataset: str, timeout: float = 60.0) -> Path:
    """Download `dest` from the first of `urls` (mirrors of one file) whose content has MD5
    digest `md5`. Raises OSError, one line naming `dataset`, every mirror's failure and what
    to do (check the network, or place the files in the folder with download=false)."""
    dest, failures = Path(dest), []
    for url in urls:
        log.info("downloading %s -> %s", url, dest)
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                write_atomic(dest, response, md5)
            return dest
        except (OSError, ValueError) as e:  # URLError and HTTPError are OSErrors
            failures.append(f"{url}: {' '.join(str(getattr(e, 'reason', None) or e).split())}")
    raise OSError(
        f"{dataset}: could not download {dest.name} ({'; '.join(failures)}); check the network, "
        f"or place the files in {dest.parent} and set dataset.download=false"
    )


def extract_files(archive: str | Path, members: dict[str, Path]) -> None:
    """Extract the regular files named by the keys of `members` (paths inside the tar archive)
    to the paths given by its values, each written atomically. Nothing else is extracted, so
    the archive's own paths and links never reach the file system."""
    with tarfile.open(archive) as tar:
        for name, dest in members.items():
            try:
                source = tar.extractfile(name)
            except KeyError:
                source = None
            if source is None:
                raise DataFileError(f"{archive}: no regular file {name!r} in the archive")
            with source:
                write_atomic(dest, source)


def missing_files_error(dataset: str, folder: Path, files: Sequence[str], source: str) -> FileNotFoundError:
    """The error for files absent with `download=false`: which files, which folder, and how
    to get them."""
    return FileNotFoundError(
        f"{dataset}: missing {', '.join(files)} in {folder}. Put the files there (or point "
        f"dataset.data_dir at the folder holding them), or set dataset.download=true to fetch "
        f"them from {source}"
    )
