"""The one file writer of tpri: every file the project writes goes through `write_atomic`.

A temp file is written beside the destination, flushed, fsynced and renamed over it, so a
kill or a full disk at any instant leaves either the previous file or the new one, whole.
The file gets the permissions an ordinary `open()` would (0666 minus the umask), so
collaborators who can read `train.log` can read the results too.
"""

from __future__ import annotations

import glob
import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

TEMP_SUFFIX = ".tmp"  # temp files are `.<name>.<random>.tmp` beside their destination
_TEMP = re.compile(r"\.[A-Za-z0-9_]{8}\.tmp")  # what follows `.<name>` (mkstemp's 8 characters)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: str | Path, write: Callable[[BinaryIO], None]) -> None:
    """Write `path` through `write(file)`; on any failure the old file (if any) is untouched
    and no temp file is left. `write` may raise to reject the content (e.g. a bad checksum)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
            os.fchmod(f.fileno(), 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_bytes(data: bytes, path: str | Path) -> None:
    write_atomic(path, lambda f: f.write(data))


def save_text(text: str, path: str | Path) -> None:
    save_bytes(text.encode(), path)


def save_json(obj, path: str | Path) -> None:
    """json.dump (indented, NaN written as NaN like pandas reads it), atomically."""
    save_bytes(json.dumps(obj, indent=2).encode() + b"\n", path)


def save_torch(obj, path: str | Path) -> None:
    """torch.save, atomically. Serialized in memory first: torch's zip writer reports a full
    disk as a RuntimeError, a plain write as the OSError it is."""
    import io as stdio

    import torch

    buffer = stdio.BytesIO()
    torch.save(obj, buffer)
    save_bytes(buffer.getvalue(), path)


def remove_stale_temps(folder: str | Path, names) -> list[Path]:
    """Delete the temp files that a killed writer of `folder/<name>` (name in `names`) left;
    only call this while no other process writes there (e.g. under the run-directory lock).
    Other files, dotted or not, are left alone. Returns what was removed."""
    removed = []
    for name in names:
        for p in Path(folder).glob(f".{glob.escape(name)}.*{TEMP_SUFFIX}"):
            if _TEMP.fullmatch(p.name[len(name) + 1 :]) and p.is_file() and not p.is_symlink():
                p.unlink(missing_ok=True)
                removed.append(p)
    return removed
