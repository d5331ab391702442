"""Load test of `llmrec serve`: one command, bounded in requests and seconds, a markdown table out.

    python -m bench.serve_load --run runs/demo/mf --requests 2000 --seconds 30 --out serve-mf.md

Starts `llmrec serve RUN` on a free loopback port twice, with batching on (--max-batch 64) and off (--max-batch 1),
and drives it with a real HTTP client (threads, each with a keep-alive `http.client` connection): POST /score
requests of `--pairs` items for one user each (a user's candidates: an LLM run shares their prompt prefix), at
concurrency 1, 8 and 32 with batching on and 32 with it off. Reports requests/s, pairs/s, p50/p95/p99 latency,
errors (non-200 answers or failed connections: must be 0, the exit status says), the server's RSS before and
after, and the batches its /info counted. For an LLM run also prompt tokens/s: the offline scorer
(`Recommender.score` in this process, one call) on the same pairs vs the served requests at concurrency 32.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Level:
    """One load level: what was sent and how it went."""

    mode: str
    concurrency: int
    latencies: list[float] = field(default_factory=list)
    done: list[int] = field(default_factory=list)
    """Indices (into the request pool) of the requests answered 200."""
    errors: int = 0
    first_error: str = ""
    seconds: float = 0.0

    def row(self, pairs: int, tokens: np.ndarray | None) -> list:
        lat = np.asarray(self.latencies) * 1e3
        n = len(self.done)
        q = (lambda p: f"{np.percentile(lat, p):.1f}") if len(lat) else (lambda p: "-")
        row = [self.mode, self.concurrency, n, f"{self.seconds:.1f}", f"{n / self.seconds:.1f}",
               f"{n * pairs / self.seconds:.0f}", q(50), q(95), q(99), self.errors]
        if tokens is not None:
            row.append(f"{tokens[self.done].sum() / self.seconds:.0f}")
        return row


class Server:
    """`llmrec serve RUN --port 0` as a subprocess; its port read from the line it prints."""

    def __init__(self, run: Path, max_batch: int, max_wait_ms: float, timeout_s: float = 120):
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llmrec.cli", "serve", str(run), "--port", "0", "--max-batch", str(max_batch),
             "--max-wait-ms", str(max_wait_ms), "--timeout-s", str(timeout_s)],
            stderr=subprocess.PIPE, text=True, env=env)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if m := re.search(r"on http://127\.0\.0\.1:(\d+)", line):
                self.port = int(m.group(1))
                threading.Thread(target=self.proc.stderr.read, daemon=True).start()  # keep the pipe drained
                return
            if not line and self.proc.poll() is not None:
                raise RuntimeError(f"llmrec serve exited {self.proc.returncode}")
        raise RuntimeError("llmrec serve did not start in 300 s")

    def rss_mib(self) -> float:
        import psutil

        return psutil.Process(self.proc.pid).memory_info().rss / 2**20

    def info(self) -> dict:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        conn.request("GET", "/info")
        return json.loads(conn.getresponse().read())

    def stop(self) -> int:
        self.proc.terminate()
        return self.proc.wait(60)


def drive(port: int, bodies: list[bytes], level: Level, max_requests: int, max_seconds: float) -> Level:
    """`level.concurrency` threads send bodies (cycling through the pool) until max_requests are sent or
    max_seconds have passed."""
    lock, counter = threading.Lock(), [0]
    deadline = time.monotonic() + max_seconds

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=max_seconds + 60)
        while time.monotonic() < deadline:
            with lock:
                j = counter[0]
                counter[0] += 1
            if j >= max_requests:
                break
            k = j % len(bodies)
            t = time.perf_counter()
            try:
                conn.request("POST", "/score", body=bodies[k], headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                text = resp.read()
                ok = resp.status == 200
            except (OSError, http.client.HTTPException) as exc:
                ok, text = False, repr(exc).encode()
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=max_seconds + 60)
            elapsed = time.perf_counter() - t
            with lock:
                if ok:
                    level.latencies.append(elapsed)
                    level.done.append(k)
                else:
                    level.errors += 1
                    level.first_error = level.first_error or text[:200].decode(errors="replace")
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(level.concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    level.seconds = time.perf_counter() - start
    return level


def request_pool(rec, n: int, pairs: int, seed: int = 0) -> tuple[list[tuple[object, list]], list[bytes]]:
    """n requests: a random known user and `pairs` random items each (the dataset's own ids)."""
    rng = np.random.default_rng(seed)
    users = np.array(sorted(rec.ids.known_users))
    pool = []
    for _ in range(n):
        u = int(rng.choice(users))
        items = rng.choice(np.arange(1, rec.ids.n_items), size=min(pairs, rec.ids.n_known_items), replace=False)
        pool.append((rec.ids.user_out(u), [rec.ids.item_out(int(i)) for i in items]))
    bodies = [json.dumps({"pairs": [{"user_id": u, "item_id": i} for i in items]}).encode() for u, items in pool]
    return pool, bodies


def llm_tokens(rec, pool) -> tuple[np.ndarray, float] | None:
    """Prompt tokens of each request, and the offline scorer's tokens/s on all the pool's pairs (one call)."""
    if getattr(rec, "_llm", None) is None:
        return None
    per_request = []
    users, items = [], []
    for u, its in pool:
        iu, ii = [rec.ids.user(u)] * len(its), [rec.ids.item(i) for i in its]
        prompts = rec.prompts.for_frame(rec._frame(np.array(iu), np.array(ii)))
        per_request.append(sum(len(p) for p in prompts))
        users += [u] * len(its)
        items += its
    rec.score(users[:len(pool[0][1])], items[:len(pool[0][1])])  # warm-up
    t = time.perf_counter()
    rec.score(users, items)
    return np.asarray(per_request), sum(per_request) / (time.perf_counter() - t)


@dataclass
class LoadResult:
    """What `measure` found: the report's markdown, and the figures the bench's targets read."""

    lines: list[str]
    errors: int
    batching_ratio: float | None = None
    """requests/s with batching on / off at the highest concurrency."""
    offline_tokens_per_s: float | None = None
    """LLM runs: the offline scorer's prompt tokens/s on the pool's pairs (one `Recommender.score` call)."""
    served_tokens_per_s: float | None = None
    """LLM runs: prompt tokens/s served with batching on at the highest concurrency."""


def measure(run: Path, requests: int, seconds: float, pairs: int, pool_size: int = 256,
            concurrency: tuple[int, ...] = (1, 8, 32), max_wait_ms: float = 5.0, log=print) -> LoadResult:
    """Load levels with batching on, then the highest one with it off, each against a fresh server."""
    from llmrec.recommender import Recommender

    rec = Recommender.from_pretrained(run)
    pool, bodies = request_pool(rec, pool_size, pairs)
    llm = llm_tokens(rec, pool)
    tokens = llm[0] if llm else None
    del rec
    rows, servers, errors, first = [], [], 0, ""
    plans = [("batching on (--max-batch 64)", 64, concurrency), ("batching off (--max-batch 1)", 1, (max(concurrency),))]
    for mode, max_batch, levels in plans:
        server = Server(run, max_batch, max_wait_ms)
        try:
            drive(server.port, bodies[:4], Level("warm-up", 1), 4, 60)  # first calls pay one-off costs
            before = server.rss_mib()
            for c in levels:
                log(f"serve_load: {mode}, concurrency {c} ...")
                level = drive(server.port, bodies, Level(mode, c), requests, seconds)
                rows.append(level.row(pairs, tokens))
                errors += level.errors
                first = first or level.first_error
            after = server.rss_mib()
            stats = server.info()["stats"]
        finally:
            code = server.stop()
        servers.append([mode, f"{before:.0f}", f"{after:.0f}", stats["batches"], stats["requests"],
                        f"{stats['requests'] / max(stats['batches'], 1):.1f}", stats["largest_batch"], code])
    from bench.common import table

    header = ["server", "concurrency", "requests", "seconds", "requests/s", "pairs/s", "p50 ms", "p95 ms",
              "p99 ms", "errors"] + (["prompt tokens/s"] if tokens is not None else [])
    lines = [f"`llmrec serve {run}` on loopback, POST /score with {pairs} items of one user per request "
             f"({pool_size} different requests, cycled), at most {requests} requests or {seconds:g} s per level, "
             f"--max-wait-ms {max_wait_ms:g}; client: {max(concurrency)} threads at most, keep-alive http.client.", "",
             *table(header, rows), "",
             *table(["server", "RSS before load (MiB)", "RSS after (MiB)", "batches", "requests", "requests/batch",
                     "largest batch", "exit status after SIGTERM"], servers)]
    by_mode = {r[0]: r for r in rows if r[1] == max(concurrency)}
    on, off = (by_mode.get(plans[0][0]), by_mode.get(plans[1][0]))
    result = LoadResult(lines, errors)
    if on and off:
        result.batching_ratio = float(on[4]) / max(float(off[4]), 1e-9)
        lines += ["", f"Batching at concurrency {max(concurrency)}: {on[4]} vs {off[4]} requests/s "
                      f"(x{result.batching_ratio:.2f})."]
    if llm:
        result.offline_tokens_per_s = llm[1]
        result.served_tokens_per_s = float(on[-1]) if on else float("nan")
        lines += [f"Prompt tokens/s: offline scorer {llm[1]:.0f} (one `Recommender.score` call on the pool's "
                  f"{sum(len(i) for _, i in pool)} pairs, this process) vs served {result.served_tokens_per_s:.0f} "
                  f"(batching on, concurrency {max(concurrency)})."]
    if errors:
        lines += ["", f"**{errors} errors**, the first: {first}"]
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.serve_load", description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", required=True, type=Path, help="a finished run directory (any family)")
    ap.add_argument("--requests", type=int, default=2000, help="at most this many requests per load level")
    ap.add_argument("--seconds", type=float, default=30, help="at most this long per load level")
    ap.add_argument("--pairs", type=int, default=8, help="items scored per request (one user's)")
    ap.add_argument("--pool", type=int, default=256, help="different requests, cycled")
    ap.add_argument("--concurrency", default="1,8,32", help="client threads per level, comma-separated")
    ap.add_argument("--max-wait-ms", type=float, default=5.0, help="the server's batching window")
    ap.add_argument("--out", type=Path, help="also write the markdown here")
    args = ap.parse_args(argv)
    levels = tuple(int(c) for c in args.concurrency.split(","))
    result = measure(args.run, args.requests, args.seconds, args.pairs, args.pool, levels, args.max_wait_ms,
                     log=lambda m: print(m, file=sys.stderr, flush=True))
    text = "\n".join(result.lines) + "\n"
    print(text, end="")
    if args.out:
        sys.path.insert(0, str(ROOT / "src"))
        from llmrec.paths import atomic_file

        with atomic_file(args.out) as tmp:
            tmp.write_text(text)
    return 1 if result.errors else 0


if __name__ == "__main__":
    sys.exit(main())
