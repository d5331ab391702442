"""The HTTP server in process (uvicorn in a thread, a free loopback port, the standard library's HTTP client):
the endpoints, batched answers equal to one-at-a-time answers, and bad requests that never hurt it."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from llmrec.server.run import run_info
from server_helpers import call, concurrently, raw_item, serving

TOL = 1e-5


def assert_error(status_body, status: int, *needles: str) -> None:
    got, body = status_body
    assert got == status, body
    assert set(body) == {"error"} and "\n" not in body["error"], body
    assert all(n in body["error"] for n in needles), body


def test_endpoints(recs, served_runs):
    rec = recs["mf"]
    with serving(rec, run_info(served_runs / "mf")) as (port, _):
        assert call(port, "GET", "/health")[1]["status"] == "ok"
        status, info = call(port, "GET", "/info")
        assert status == 200 and info["method"] == "mf" and info["family"] == "click" and info["dataset"] == "csv"
        assert info["ids"] == "raw" and info["users"] == len(rec.ids.known_users) and info["items"] > 0
        assert info["batching"]["max_batch"] == 32 and "recommend" in info["batching"]
        status, out = call(port, "POST", "/score", {"pairs": [{"user_id": "u_1", "item_id": raw_item(3)},
                                                              {"user_id": "u_2", "item_id": raw_item(4)}]})
        assert status == 200 and [s["item_id"] for s in out["scores"]] == [raw_item(3), raw_item(4)]
        np.testing.assert_allclose([s["score"] for s in out["scores"]],
                                   rec.score(["u_1", "u_2"], [raw_item(3), raw_item(4)]), atol=TOL)
        status, out = call(port, "POST", "/recommend", {"user_id": "u_1", "k": 3})
        assert status == 200 and [i["item_id"] for i in out["items"]] == [i for i, _, _ in rec.recommend("u_1", 3)]
        status, out = call(port, "POST", "/recommend", {"user_id": "u_1", "k": 2,
                                                        "candidates": [raw_item(2), raw_item(3), raw_item(5)]})
        assert status == 200 and {i["item_id"] for i in out["items"]} <= {raw_item(2), raw_item(3), raw_item(5)}
        status, out = call(port, "POST", "/recommend", {"user_id": "u_new", "k": 2, "cold_start": "popularity"})
        assert status == 200 and out["cold_start"] is True and len(out["items"]) == 2
        status, out = call(port, "POST", "/score", {"pairs": [{"user_id": "u_new", "item_id": raw_item(3)}],
                                                    "cold_start": "popularity"})
        assert status == 200 and out["scores"][0]["cold_start"] is True
        status, out = call(port, "POST", "/recommend", {"user_id": 1, "k": 2, "internal_ids": True})
        assert status == 200 and all(isinstance(i["item_id"], int) for i in out["items"])
        assert call(port, "GET", "/openapi.json")[0] == 200
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/docs")
        assert conn.getresponse().status == 200
        conn.close()


@pytest.mark.parametrize("method", ["mf", "tallrec"])
def test_batched_answers_equal_one_at_a_time(method, recs):
    rec = recs[method]
    rng = np.random.default_rng(0)
    users = sorted(rec.ids.known_users)
    requests = []
    for r in range(12):  # requests of 1-6 pairs; some share a user (a shared prompt prefix for the LLM)
        n = int(rng.integers(1, 7))
        us = [rec.ids.user_out(int(u)) for u in rng.choice(users, n)]
        its = [rec.ids.item_out(int(i)) for i in rng.integers(1, rec.ids.n_items, n)]
        requests.append([{"user_id": u, "item_id": i} for u, i in zip(us, its)])
    alone = [rec.score([p["user_id"] for p in ps], [p["item_id"] for p in ps]) for ps in requests]
    assert np.concatenate(alone).std() > 100 * TOL  # scores that differ, so the comparison can fail
    with serving(rec, max_batch=64, max_wait_ms=300) as (port, app):
        answers = concurrently(lambda ps: call(port, "POST", "/score", {"pairs": ps}), [(ps,) for ps in requests])
        recs_alone = [rec.recommend(u, 3) for u in ("u_1", "u_2", "u_3")]
        got = concurrently(lambda u: call(port, "POST", "/recommend", {"user_id": u, "k": 3}),
                           [(u,) for u in ("u_1", "u_2", "u_3")])
        stats = app.state.batcher.stats
    assert stats.largest_batch > 1, vars(stats)  # the concurrent requests were coalesced
    for (status, body), want in zip(answers, alone):
        assert status == 200, body
        np.testing.assert_allclose([s["score"] for s in body["scores"]], want, rtol=0, atol=TOL)
    for (status, body), want in zip(got, recs_alone):
        assert status == 200 and [i["item_id"] for i in body["items"]] == [i for i, _, _ in want]
        np.testing.assert_allclose([i["score"] for i in body["items"]], [s for _, _, s in want], atol=TOL)


def test_bad_requests_get_one_line_and_the_server_keeps_serving(recs):
    rec = recs["mf"]
    pair = {"user_id": "u_1", "item_id": raw_item(3)}
    with serving(rec, max_body_bytes=4096, max_pairs=50) as (port, _):
        assert_error(call(port, "POST", "/score", raw=b'{"pairs": [{"user_id": '), 422, "not valid JSON")
        assert_error(call(port, "POST", "/score", {"pairz": [pair]}), 422, "pairs")
        assert_error(call(port, "POST", "/score", {"pairs": [{"user_id": "u_1"}]}), 422, "pairs.0.item_id")
        assert_error(call(port, "POST", "/score", {"pairs": [{"user_id": 1.5, "item_id": "x"}]}), 422, "user_id")
        assert_error(call(port, "POST", "/score", {"pairs": []}), 422, "pairs")
        assert_error(call(port, "POST", "/recommend", {"user_id": "u_1", "k": 0}), 422, "k")
        assert_error(call(port, "POST", "/recommend", {"k": 3}), 422, "exactly one of user_id or items")
        assert_error(call(port, "POST", "/score", {"pairs": [pair], "cold_start": "random"}), 422, "cold_start")
        # unknown ids: 404 with the CLI's message
        assert_error(call(port, "POST", "/score", {"pairs": [pair, {"user_id": "u_999", "item_id": raw_item(3)}]}),
                     404, "pairs.1: user u_999 is not in the run's data (")
        assert_error(call(port, "POST", "/score", {"pairs": [{"user_id": "u_1", "item_id": "tt9"}]}),
                     404, "item tt9 is not in the run's data (")
        assert_error(call(port, "POST", "/recommend", {"user_id": "u_999"}), 404, "user u_999 is not in the run's")
        assert_error(call(port, "POST", "/recommend", {"user_id": "u_1", "candidates": ["tt9"]}), 404,
                     "candidates: item tt9 is not in the run's data")
        # other bad values: 422 with the library's line
        assert_error(call(port, "POST", "/recommend", {"items": [raw_item(3)]}), 422,
                     "mf run cannot recommend from a new user's items")
        # too large: body bytes (with and without Content-Length), pairs, candidates
        assert_error(call(port, "POST", "/score", {"pairs": [pair] * 200}), 413, "4096 bytes")
        assert_error(call(port, "POST", "/score", raw=b"{" + b" " * 5000 + b"}"), 413, "--max-body-bytes")
        assert_error(call(port, "POST", "/score", {"pairs": [{"user_id": 1, "item_id": 1}] * 51}), 413,
                     "pairs: 51 over the limit of 50")
        assert_error(call(port, "POST", "/recommend", {"user_id": "u_1", "candidates": list(range(51))}), 413,
                     "candidates")
        assert_error(call(port, "GET", "/nope"), 404, "Not Found")
        assert_error(call(port, "GET", "/score"), 405)
        assert call(port, "POST", "/score", {"pairs": [pair]})[0] == 200
        assert call(port, "GET", "/health")[1]["status"] == "ok"


def test_chunked_body_over_the_limit_gets_413(recs):
    import socket

    # the whole request in one send: the server may answer 413 and close as soon as it has seen 1,000 bytes, and a
    # client still sending chunk by chunk would then get a reset instead of the answer
    chunks = [b"{", b" " * 600, b" " * 600, b"}"]
    body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
    request = (b"POST /score HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + body)
    with serving(recs["mf"], max_body_bytes=1000) as (port, _):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(request)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
    assert answer.startswith(b"HTTP/1.1 413") and b"--max-body-bytes" in answer


def test_timeout_is_504_and_the_queue_drops_the_request(recs):
    with serving(recs["mf"], max_wait_ms=400, timeout_s=0.1) as (port, app):
        assert_error(call(port, "POST", "/recommend", {"user_id": "u_1"}), 504, "--timeout-s")
        time.sleep(0.5)
        assert call(port, "GET", "/health")[1]["status"] == "ok"


class Slow:
    """A recommender whose model calls take three seconds: /health must answer meanwhile."""

    def __init__(self, rec):
        self.rec = rec

    def __getattr__(self, name):
        return getattr(self.rec, name)

    def score_resolved(self, u, i):
        time.sleep(3.0)
        return self.rec.score_resolved(u, i)


def test_health_answers_while_a_batch_runs(recs):
    with serving(Slow(recs["mf"]), max_wait_ms=0) as (port, app):
        done = []
        t = threading.Thread(target=lambda: done.append(
            call(port, "POST", "/score", {"pairs": [{"user_id": "u_1", "item_id": raw_item(3)}]})))
        t.start()
        while not app.state.batcher.stats.busy:
            time.sleep(0.01)
        status, health = call(port, "GET", "/health")
        assert status == 200 and health["busy"] is True  # answered while the model call still runs
        t.join(10)
        assert done[0][0] == 200


def test_a_holdout_run_recommends_for_a_new_users_items(recs, served_runs):
    rec = recs["popularity-holdout"]
    with serving(rec, run_info(served_runs / "popularity-holdout")) as (port, _):
        assert call(port, "GET", "/info")[1]["family"] == "holdout"
        status, out = call(port, "POST", "/recommend", {"items": [raw_item(3), raw_item(5)], "k": 3})
        want = rec.recommend_for_items([raw_item(3), raw_item(5)], 3)
        assert status == 200 and [i["item_id"] for i in out["items"]] == [i for i, _, _ in want]
        user = rec.ids.user_out(min(rec.ids.known_users))
        status, out = call(port, "POST", "/score", {"pairs": [{"user_id": user, "item_id": raw_item(3)}]})
        assert status == 200 and out["scores"][0]["score"] == pytest.approx(rec.score([user], [raw_item(3)])[0])


def test_a_sequence_run_over_http(recs, served_runs):
    rec = recs["popularity-rank"]
    with serving(rec, run_info(served_runs / "popularity-rank")) as (port, _):
        assert call(port, "GET", "/info")[1]["family"] == "sequence"
        user = rec.ids.user_out(min(rec.ids.known_users))
        status, out = call(port, "POST", "/recommend", {"user_id": user, "k": 3})
        assert status == 200 and [i["item_id"] for i in out["items"]] == [i for i, _, _ in rec.recommend(user, 3)]
        status, out = call(port, "POST", "/score", {"pairs": [{"user_id": user, "item_id": raw_item(3)}]})
        assert status == 200 and out["scores"][0]["score"] == pytest.approx(rec.score([user], [raw_item(3)])[0])
        assert_error(call(port, "POST", "/recommend", {"user_id": "u_nobody"}), 404, "u_nobody")
