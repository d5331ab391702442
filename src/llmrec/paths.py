"""Cache root and atomic writes: nothing half-written ever looks complete.

A write goes to a hidden temporary beside its target, `.<name>.<pid>.<random>.tmp`, renamed onto the target at
the end. A killed writer leaves its temporary behind; the next write of the same target removes the ones whose
writer is gone: no live process of that pid on this machine, and nothing in them touched for `STALE_AFTER`
seconds (so a writer on another machine sharing the folder, still writing, keeps its temporary).
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

STALE_AFTER = 300.0
"""Seconds without a change after which a dead writer's temporary is removed."""


def home() -> Path:
    """Cache root: $LLMREC_HOME, default ~/.cache/llmrec."""
    root = Path(os.environ.get("LLMREC_HOME", Path.home() / ".cache" / "llmrec")).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # exists (someone else's) or not a pid we can judge: keep
    return True


def _last_change(path: Path) -> float:
    """Newest mtime of `path` and, for a folder, of everything in it (a big file being written keeps it fresh)."""
    newest = path.lstat().st_mtime
    if path.is_dir() and not path.is_symlink():
        for root, dirs, files in os.walk(path):
            for n in dirs + files:
                with contextlib.suppress(OSError):
                    newest = max(newest, os.lstat(os.path.join(root, n)).st_mtime)
    return newest


def clean_stale(path: str | os.PathLike, stale_after: float = STALE_AFTER) -> list[Path]:
    """Remove temporaries of `path` left by killed writers (see the module docstring); returns what was removed."""
    path = Path(path)
    name = re.escape(path.name)  # mkstemp's random part has no dots, so a sibling's temporaries never match
    pattern = re.compile(rf"^\.{name}\.(?:(\d+)\.)?\w+\.tmp$|^\.{name}\.old$")
    removed = []
    try:
        candidates = [(p, m) for p in path.parent.iterdir() if (m := pattern.match(p.name))]
    except OSError:
        return removed
    now = time.time()
    for p, m in candidates:
        pid = int(m.group(1)) if m.group(1) else None
        try:
            if (pid is not None and pid != os.getpid() and _pid_alive(pid)) or now - _last_change(p) < stale_after:
                continue
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
            removed.append(p)
        except OSError:  # another writer removed or renamed it first
            continue
    return removed


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike):
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike):
    """Yield a temporary directory beside `path`; it replaces `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; give the directory the usual mode
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
