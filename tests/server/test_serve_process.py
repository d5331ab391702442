"""`llmrec serve` as a real process: it serves a read-only run directory without writing to it, and SIGTERM
drains the request in flight, then exits 0."""
from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

from server_helpers import call, raw_item

SRC = str(Path(__file__).resolve().parents[2] / "src")


def snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


def read_only(root: Path, on: bool) -> None:
    for p in [root, *root.rglob("*")]:
        mode = p.stat().st_mode
        p.chmod(mode & ~0o222 if on else mode | stat.S_IWUSR)


def start(run: Path, *args: str) -> tuple[subprocess.Popen, int]:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "llmrec.cli", "serve", str(run), "--port", "0", *args],
                            stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        m = re.search(r"on http://127\.0\.0\.1:(\d+)", line)
        if m:
            return proc, int(m.group(1))
        assert line or proc.poll() is None, f"server exited {proc.returncode}"
    raise AssertionError("server did not start")


def test_read_only_run_and_sigterm_drains(served_runs):
    run = served_runs / "mf"
    before = snapshot(run)
    read_only(run, True)
    try:
        proc, port = start(run, "--max-wait-ms", "1500", "--max-batch", "8")
        try:
            pair = {"user_id": "u_1", "item_id": raw_item(3)}
            status, info = call(port, "GET", "/info")
            assert status == 200 and info["method"] == "mf" and info["batching"]["max_wait_ms"] == 1500
            assert call(port, "POST", "/score", {"pairs": [pair]})[0] == 200
            done = []
            t = threading.Thread(target=lambda: done.append(call(port, "POST", "/score", {"pairs": [pair]})))
            t.start()
            time.sleep(0.5)  # the request waits in the batcher for 1.5 s: it is in flight when SIGTERM arrives
            proc.send_signal(signal.SIGTERM)
            t.join(30)
            assert done and done[0][0] == 200 and len(done[0][1]["scores"]) == 1
            assert proc.wait(30) == 0
            rest = proc.stderr.read()
            assert "stopped after 2 requests" in rest and "Traceback" not in rest, rest
        finally:
            if proc.poll() is None:
                proc.kill()
    finally:
        read_only(run, False)
    assert snapshot(run) == before  # nothing written into the run directory


def test_bad_settings_are_one_line(served_runs):
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-m", "llmrec.cli", "serve", str(served_runs / "mf"), "--max-batch", "0"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 2 and out.stderr.strip() == "llmrec: error: --max-batch: must be >= 1, got 0"
