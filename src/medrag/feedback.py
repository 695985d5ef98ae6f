"""Readers' 👍/👎 on answers, kept for operators: one JSON object a line, appended; rotated to `.1` when full."""

import json
import os
import threading
from pathlib import Path

from .errors import StorageError

_lock = threading.Lock()


def append(path: Path, record: dict, max_bytes: int | None = None) -> None:
    """Add one record as one line; a single write to an O_APPEND file, so lines never interleave.

    A file that would grow past `max_bytes` is first renamed to `<name>.1`, replacing the one before.
    """
    line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
    try:
        with _lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            if max_bytes is not None and path.exists() and path.stat().st_size + len(line) > max_bytes:
                os.replace(path, path.with_name(path.name + ".1"))
            descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(descriptor, line)
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
    except OSError as error:
        raise StorageError(f"feedback cannot be stored in {path} (MEDRAG_FEEDBACK_PATH): {error.strerror}") from error
