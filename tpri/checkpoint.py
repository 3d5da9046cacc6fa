"""Atomic files: a kill at any instant leaves either the previous file or the new one, whole."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch


def _atomic_write(path: Path, write) -> None:
    """Write through `write(file)` into a temp file beside `path`, fsync, then rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_torch(obj, path: Path) -> None:
    """torch.save, atomically."""
    _atomic_write(path, lambda f: torch.save(obj, f))


def save_json(obj, path: Path) -> None:
    """json.dump (indented), atomically."""
    _atomic_write(path, lambda f: f.write(json.dumps(obj, indent=2).encode() + b"\n"))


def save_text(text: str, path: Path) -> None:
    """A text file, atomically."""
    _atomic_write(path, lambda f: f.write(text.encode()))
