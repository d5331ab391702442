"""Fixtures for the data-layer tests: a private cache root, synthetic datasets, a local archive server."""
from __future__ import annotations

import http.server
import threading

import numpy as np
import pandas as pd
import pytest

from llmrec.data.build import make_dataset


@pytest.fixture(autouse=True)
def llmrec_home(tmp_path, monkeypatch):
    """Every test gets its own empty cache root."""
    home = tmp_path / "llmrec-home"
    monkeypatch.setenv("LLMREC_HOME", str(home))
    return home


def synthetic_dataset(n_users=30, n_items=40, n_rows=600, seed=0, name="synthetic", t0=1_000_000_000,
                      span=86_400 * 400, tie_share=0.3):
    """Random ratings 1..5 with many same-second ties (a share of rows reuse the previous row's timestamp)."""
    rng = np.random.default_rng(seed)
    users = rng.integers(1, n_users + 1, n_rows)
    items = rng.integers(1, n_items + 1, n_rows)
    ts = t0 + rng.integers(0, span, n_rows)
    tie = rng.random(n_rows) < tie_share
    for k in np.flatnonzero(tie)[1:]:
        same = np.flatnonzero(users[:k] == users[k])
        if len(same):
            ts[k] = ts[same[-1]]
    raw = pd.DataFrame({"user": users * 7, "item": items * 3, "rating": rng.integers(1, 6, n_rows).astype(float),
                        "timestamp": ts})
    item_frame = pd.DataFrame({"item": np.arange(1, n_items + 1) * 3,
                               "title": [f"Item {i}" for i in range(1, n_items + 1)], "text": ""})
    return make_dataset(name, raw, item_frame, "synthetic")


@pytest.fixture
def ds():
    return synthetic_dataset()


@pytest.fixture
def make_ds():
    """The synthetic dataset factory (keyword arguments as `synthetic_dataset`)."""
    return synthetic_dataset


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's naming)
        files, truncate = self.server.files, self.server.truncate
        name = self.path.rsplit("/", 1)[-1]
        if name not in files:
            self.send_error(404)
            return
        body = files[name]
        self.server.requests.append(name)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if name in truncate else body)

    def log_message(self, *args):
        pass


@pytest.fixture
def archive_server(monkeypatch):
    """A local HTTP server (127.0.0.1 only) serving `server.files[name]`; names in `server.truncate` are cut
    short after announcing their full length. LLMREC_GROUPLENS_URL points at it."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.files, server.truncate, server.requests = {}, set(), []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    monkeypatch.setenv("LLMREC_GROUPLENS_URL", f"http://127.0.0.1:{server.server_address[1]}/movielens")
    yield server
    server.shutdown()
    server.server_close()
