"""The one file writer of tpri: every file the project writes goes through this module.

Files are written whole by `write_atomic`: a temp file is written beside the destination,
flushed, fsynced and renamed over it, so a kill or a full disk at any instant leaves either the
previous file or the new one, whole. The file gets the permissions an ordinary `open()` would
(0666 minus the umask), so collaborators who can read `train.log` can read the results too.
The two logs grow by whole lines instead: a sweep's failed_jobs.txt, which parallel jobs share
(`append_line`), and the `train.log` of a run started without Hydra (`log_handler`).
"""

from __future__ import annotations

import glob
import json
import logging
import os
import re
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

TEMP_SUFFIX = ".tmp"  # temp files are `.<name>.<pid>-<random>.tmp` beside their destination
# what follows `.<name>`: the writer's PID (absent in files of tpri <= 0.1.0), mkstemp's 8 characters
_TEMP = re.compile(r"\.(?:(\d+)-)?[A-Za-z0-9_]{8}\.tmp")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: str | Path, write: Callable[[BinaryIO], None]) -> None:
    """Write `path` through `write(file)`; on any failure the old file (if any) is untouched
    and no temp file is left. `write` may raise to reject the content (e.g. a bad checksum).
    An OSError of the file system (read-only dir, full disk) names `path`, not the temp file."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}-", suffix=TEMP_SUFFIX)
    except OSError as err:
        raise _naming(err, path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
            os.fchmod(f.fileno(), 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise _naming(err, path) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _naming(err: OSError, path: Path) -> OSError:
    """The same error (same type and errno), naming the destination."""
    if err.errno is None:
        return err
    return type(err)(err.errno, err.strerror, str(path))


def append_line(line: str, path: str | Path) -> None:
    """Add `line` and a newline to the log at `path` in one write() in append mode, so that the
    lines of parallel writers never mix; the log is created if needed, never rewritten."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)


def log_handler(path: str | Path) -> logging.Handler:
    """A logging handler that appends each record to the log at `path` as one line."""
    return logging.FileHandler(path, encoding="utf-8")


def save_bytes(data: bytes, path: str | Path) -> None:
    write_atomic(path, lambda f: f.write(data))


def save_text(text: str, path: str | Path) -> None:
    save_bytes(text.encode(), path)


def save_json(obj, path: str | Path) -> None:
    """json.dump (indented, NaN written as NaN like pandas reads it), atomically."""
    save_bytes(json.dumps(obj, indent=2).encode() + b"\n", path)


def save_torch(obj, path: str | Path) -> None:
    """torch.save of tensors and plain data (see `torch_data`), atomically, so that
    `load_torch` reads it back without unpickling any object. Serialized in memory first:
    torch's zip writer reports a full disk as a RuntimeError, a plain write as the OSError it is."""
    import io as stdio

    import torch

    buffer = stdio.BytesIO()
    torch.save(torch_data(obj), buffer)
    save_bytes(buffer.getvalue(), path)


def torch_data(obj, where: str = "") -> object:
    """`obj` with only what `torch.load(weights_only=True)` reads: tensors, dicts, lists,
    tuples, str, int, float, bool, None (a str subclass such as torch's version string becomes
    a str, a numpy scalar its Python number); anything else raises TypeError naming where."""
    from collections import OrderedDict

    import numpy as np
    import torch

    if obj is None or isinstance(obj, torch.Tensor) or type(obj) in (bool, int, float, str):
        return obj
    if isinstance(obj, np.generic) and isinstance(obj.item(), (bool, int, float)):
        return obj.item()
    for plain in (bool, str, int, float):  # subclasses: np.float64, torch's TorchVersion
        if isinstance(obj, plain):
            return plain(obj)
    if isinstance(obj, dict):
        items = {k: torch_data(v, f"{where}.{k}") for k, v in obj.items()}
        return OrderedDict(items) if isinstance(obj, OrderedDict) else items
    if isinstance(obj, (list, tuple)):
        return type(obj)(torch_data(v, f"{where}[{i}]") for i, v in enumerate(obj))
    raise TypeError(f"{where or 'value'}: a {type(obj).__name__} cannot be saved as plain data")


class UnreadableFile(ValueError):
    """A torch file that is missing, damaged or holds more than tensors and plain data."""


def load_torch(path: str | Path, map_location="cpu") -> object:
    """Read a file written by `save_torch`: tensors and plain data only (weights_only=True),
    so a pickle that would run code is refused without running it. Any failure raises
    UnreadableFile naming the file and what is wrong, in one line."""
    import pickle
    import zipfile

    import torch

    path = Path(path)
    # torch's version string, a str subclass, as the checkpoints of tpri <= 0.1.0 hold it
    known = [torch.torch_version.TorchVersion]
    try:
        with torch.serialization.safe_globals(known), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Detected pickle protocol 4": the error says it
            return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise UnreadableFile(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UnreadableFile(f"{path}: is a directory, not a torch file") from None
    except OSError as err:
        raise UnreadableFile(f"{path}: cannot read ({err.strerror or err})") from None
    except pickle.UnpicklingError as err:
        unsafe = re.search(r"GLOBAL ([\w.]+)", str(err))
        reason = "not a torch file"
        if unsafe:
            reason = f"holds objects other than tensors and plain data (a {unsafe[1]})"
        raise UnreadableFile(f"{path}: {reason}; not loaded") from None
    except (RuntimeError, EOFError, ValueError, zipfile.BadZipFile, KeyError, AttributeError) as err:
        line = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise UnreadableFile(f"{path}: damaged or not a torch file ({type(err).__name__}: {line})") from None


def remove_stale_temps(folder: str | Path, names) -> list[Path]:
    """Delete the temp files that a killed writer of `folder/<name>` (name in `names`) left:
    those whose writer's PID is no live process (a live one may be mid-write: left alone).
    Other files, dotted or not, are left alone. Returns what was removed."""
    removed = []
    for name in names:
        for p in Path(folder).glob(f".{glob.escape(name)}.*{TEMP_SUFFIX}"):
            match = _TEMP.fullmatch(p.name[len(name) + 1 :])
            if not match or not p.is_file() or p.is_symlink():
                continue
            if match[1] is not None and _alive(int(match[1])):
                continue
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def _alive(pid: int) -> bool:
    """Whether a process with this PID runs on this machine (ours included)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:  # another user's process
        return True
    return True


# the only globals a pickle of numpy arrays and plain data needs (numpy 1.x and 2.x names)
NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


def load_pickle(file, encoding: str = "ASCII") -> object:
    """Unpickle `file` (an open binary file) allowing numpy arrays and plain data only: a
    pickle that names any other callable (one that would run code) raises
    pickle.UnpicklingError before it runs."""
    import pickle

    class Restricted(pickle.Unpickler):
        def find_class(self, module: str, name: str):
            if (module, name) not in NUMPY_GLOBALS:
                raise pickle.UnpicklingError(f"refused to load {module}.{name}: not numpy data")
            return super().find_class(module, name)

    return Restricted(file, encoding=encoding).load()
