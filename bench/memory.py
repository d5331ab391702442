"""Peak resident memory of `llmrec demo` (the job `make demo` runs), measured from outside in a subprocess."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import Context, Section, Target, table

MEMORY_TARGET_GB = 4.0
QUICK_TIMEOUT = 900
FULL_TIMEOUT = 4 * 3600


@dataclass
class ChildRun:
    """How one subprocess went."""

    returncode: int | None
    """None when it was killed at the timeout."""
    seconds: float
    maxrss_bytes: int
    """Kernel's peak RSS of the child (and of the descendants it waited for: the largest, not the sum)."""
    tree_peak_bytes: int
    """Largest sum of RSS over the child and all its descendants, sampled every 0.2 s."""
    tail: str
    """Last lines of its output."""


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return 0


# A forked child starts with a copy of its parent's page tables and the kernel keeps that high-water mark in the
# child's ru_maxrss even after exec, so measured straight from this (large) process the figure would include the
# benchmark's own memory. A small interpreter without site packages spawns the command and reports its wait4 rusage.
_WRAPPER = """
import os, sys
pid = os.posix_spawn(sys.argv[2], sys.argv[2:], os.environ)
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(str(usage.ru_maxrss))
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


def run_child(cmd: list[str], timeout: float, env: dict | None = None, cwd: str | None = None) -> ChildRun:
    """Run `cmd` (an executable path first) and measure its peak RSS: the kernel's ru_maxrss through a small
    wrapper process, and the RSS of its whole process tree sampled meanwhile."""
    with tempfile.TemporaryFile() as log, tempfile.NamedTemporaryFile(suffix=".maxrss") as res:
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-S", "-c", _WRAPPER, res.name, *cmd], stdout=log,
                                stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True)
        peak, done, killed = [0], threading.Event(), threading.Event()

        def sample():
            while not done.is_set():
                tree = _descendants(proc.pid)[1:]  # the wrapper itself is not part of the demo
                peak[0] = max(peak[0], sum(_rss(p) for p in tree))
                done.wait(0.2)

        def kill():
            killed.set()
            os.killpg(proc.pid, 9)  # the whole session: wrapper, command and its children

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        killer = threading.Timer(timeout, kill)
        killer.start()
        try:
            proc.wait()
        finally:
            killer.cancel()
            done.set()
            sampler.join()
        seconds = time.perf_counter() - start
        text = Path(res.name).read_text().strip()
        maxrss = int(text) * 1024 if text else 0  # Linux reports kilobytes
        log.seek(0)
        lines = log.read().decode("utf-8", "replace").strip().splitlines()
    return ChildRun(None if killed.is_set() else proc.returncode, seconds, maxrss, peak[0], "\n".join(lines[-5:]))


def demo_command(quick: bool, out: Path) -> list[str]:
    exe = Path(sys.executable).parent / "llmrec"
    base = [str(exe)] if exe.exists() else [sys.executable, "-m", "llmrec.cli"]  # posix_spawn needs a path
    return base + ["demo", "--out", str(out)] + (["--quick"] if quick else [])


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB ({n / 2**30:.2f} GiB)"


def run(ctx: Context, sec: Section) -> None:
    jobs = [("llmrec demo --quick", True, QUICK_TIMEOUT)]
    if ctx.full_demo:
        jobs.append(("llmrec demo (full)", False, FULL_TIMEOUT))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, quick, timeout in jobs:
            if ctx.smoke:  # the real demo takes minutes: exercise the measurement on a small child instead
                name = "smoke stand-in: python allocating 200 MB"
                cmd = [sys.executable, "-c", "import time; b = bytearray(200 * 2**20); b[::4096] = b'x' * len(b[::4096]); "
                                             "time.sleep(0.5)"]
            else:
                cmd = demo_command(quick, Path(tmp) / ("quick" if quick else "full"))
            r = run_child(cmd, timeout, cwd=tmp)
            status = ("ok" if r.returncode == 0 else "killed at the timeout" if r.returncode is None
                      else f"FAILED (exit {r.returncode})")
            rows.append([f"`{name}`", status, f"{r.seconds:.0f}", _gb(r.maxrss_bytes), _gb(r.tree_peak_bytes)])
            if r.returncode != 0:
                last = r.tail.strip().splitlines()[-1] if r.tail.strip() else "no output"
                sec.add(f"`{name}` did not finish: {last[:300]}", "")
            if not ctx.smoke and quick:
                ok = r.maxrss_bytes < MEMORY_TARGET_GB * 1e9 if r.returncode == 0 else None
                sec.targets.append(Target("demo peak resident memory (`llmrec demo --quick`)",
                                          f"< {MEMORY_TARGET_GB:.0f} GB",
                                          _gb(r.maxrss_bytes) + ("" if r.returncode == 0 else f" ({status})"), ok))
            if not ctx.smoke and not quick:
                sec.targets.append(Target("demo peak resident memory (full `llmrec demo`)", f"< {MEMORY_TARGET_GB:.0f} GB",
                                          _gb(r.maxrss_bytes), r.maxrss_bytes < MEMORY_TARGET_GB * 1e9
                                          if r.returncode == 0 else None))
    sec.add(f"The target is read as {MEMORY_TARGET_GB:.0f} GB = {MEMORY_TARGET_GB:.0f} x 10^9 bytes.",
            "Run in a subprocess with this machine's cache ($LLMREC_HOME), output into a temporary directory. "
            "`peak RSS` is the kernel's ru_maxrss of the command (os.wait4 in a small launcher process, so the benchmark's own memory is not counted); `tree peak` sums the RSS of the command "
            "and all its descendants, sampled every 0.2 s." + ("" if ctx.full_demo else
                                                               " The full demo is measured with `--full-demo`."), "")
    sec.add(*table(["command", "status", "seconds", "peak RSS", "tree peak (sampled)"], rows))
