"""Atomic file writes: the one home of "write beside the target, then rename" for the package.

Readers (and a crash mid-write) never see a half-written file: the content goes to a hidden
temporary name in the target's folder, which `os.replace` then renames onto the target in one step.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def write_via_temporary(path: str | os.PathLike, write: Callable[[str], T]) -> T:
    """Call `write(temporary_path)` next to `path`, then rename the result to `path`.

    The temporary name keeps the target's extension last-but-one (`.name.ext.<id>.tmp`), is created
    by `write` itself (usual permissions), and is removed if `write` fails. Returns what `write`
    returns.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = str(path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp"))
    try:
        outcome = write(temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return outcome


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 `text` to `path` atomically; returns the path."""
    write_via_temporary(path, lambda temporary: Path(temporary).write_text(text, encoding="utf-8"))
    return Path(path)


__all__ = ["write_text_atomic", "write_via_temporary"]
