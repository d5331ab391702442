"""A real HTTP client (the standard library's) and an in-process server on a free loopback port."""
from __future__ import annotations

import contextlib
import http.client
import json
import threading
import time

import uvicorn

from llmrec.server.app import create_app
from llmrec.server.config import ServerConfig
from llmrec.server.run import listen


def raw_item(i: int) -> str:
    """The raw item ids of the served runs' data (internal id i -> 'tt000000i')."""
    return f"tt{i:07d}"


def call(port: int, method: str, path: str, body=None, raw: bytes | None = None, headers=None,
         timeout: float = 30) -> tuple[int, dict]:
    """(status, JSON body) of one request on a fresh connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        text = resp.read()
        return resp.status, json.loads(text) if text else {}
    finally:
        conn.close()


@contextlib.contextmanager
def serving(rec, info: dict | None = None, **settings):
    """The app of `rec` under uvicorn in a thread; yields (port, app)."""
    config = ServerConfig(port=0, **settings)
    app = create_app(rec, config, info)
    sock = listen("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield sock.getsockname()[1], app
    finally:
        server.should_exit = True
        thread.join(20)
        sock.close()


def concurrently(fn, args: list) -> list:
    """fn(*a) for every a at once (threads), results in order."""
    out = [None] * len(args)

    def work(j):
        out[j] = fn(*args[j])

    threads = [threading.Thread(target=work, args=(j,)) for j in range(len(args))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return out
