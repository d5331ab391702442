"""`llmrec serve RUN`: load the run once, listen, serve until SIGTERM / Ctrl-C, then drain and exit 0.

Drain: uvicorn stops accepting connections, waits for the requests in flight (at most timeout_s + a margin),
then the app's shutdown lets the model thread answer what is queued. Nothing is written to the run directory: a
read-only run (or several servers sharing one) is fine.
"""
from __future__ import annotations

import signal
import socket
import sys
from pathlib import Path

from llmrec.errors import LlmrecError
from llmrec.server.config import ServerConfig


def run_info(run_dir: str | Path) -> dict:
    """Method, family and dataset of a run, for /info."""
    from llmrec.methods import registry
    from llmrec.runs import open_run

    cfg = open_run(run_dir).config
    return {"run": str(run_dir), "method": cfg.method, "family": registry.family(cfg.method),
            "dataset": cfg.data.dataset}


def listen(host: str, port: int) -> socket.socket:
    """A listening socket (bound before uvicorn starts, so port 0 can be printed and connections queue)."""
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(2048)
    except OSError as exc:
        raise LlmrecError(f"--host {host} --port {port}: cannot listen ({exc.strerror or exc})") from None
    return sock


def serve(run_dir: str | Path, config: ServerConfig) -> None:
    config.check()  # before the slow imports and the model: a bad flag answers at once
    import uvicorn

    from llmrec.recommender import Recommender
    from llmrec.server.app import create_app

    rec = Recommender.from_pretrained(run_dir)
    if rec.ids.note:
        print(f"llmrec: note: {rec.ids.note}", file=sys.stderr)
    info = run_info(run_dir)
    app = create_app(rec, config, info)
    sock = listen(config.host, config.port)
    host, port = sock.getsockname()[:2]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                                           timeout_graceful_shutdown=int(config.timeout_s + config.max_wait_ms / 1000
                                                                         + 5)))
    print(f"llmrec: serving {info['method']} run {run_dir} on http://{host}:{port} (docs: /docs; SIGTERM or "
          "Ctrl-C drains and stops)", file=sys.stderr, flush=True)
    # uvicorn re-raises the signal that stopped it once it has drained; with these no-op handlers underneath, a
    # drained server exits 0 instead of dying of that signal
    previous = {s: signal.signal(s, lambda *_: None) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run(sockets=[sock])
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        sock.close()
    stats = app.state.batcher.stats
    print(f"llmrec: stopped after {stats.requests} requests in {stats.batches} batches", file=sys.stderr)
