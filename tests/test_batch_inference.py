"""Batch inference from files (`llmrec score RUN pairs.csv --output`, `llmrec recommend RUN --users FILE
--output`, `Serving.score_stream` / `recommend_stream`) on a run of each family: chunked, the one id rule with
file and row, a progress bar on stderr, the output written atomically, memory flat in the input's size."""
from __future__ import annotations

import os
import tracemalloc

import pandas as pd
import pytest

from llmrec.cli import main
from llmrec.errors import LlmrecError
from llmrec.recommender import Recommender

from synthetic import train_raw_id_runs

RUNS = {  # one per family
    "mf": ["data.cuts=[0.7, 0.85]", "collab.epochs=2"],
    "popularity-rank": [],
    "popularity-holdout": ["holdout.min_count=1"],
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return train_raw_id_runs(tmp_path_factory.mktemp("batch"), RUNS, lambda u: f"u_{u}", lambda i: f"i{i}")


def known_pairs(rec, n: int) -> tuple[list, list]:
    users = sorted(rec.ids.known_users)
    return ([rec.ids.user_out(users[j % len(users)]) for j in range(n)],
            [rec.ids.item_out(1 + j % rec.ids.n_known_items) for j in range(n)])


def one_line(capsys, *needles):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("llmrec: error:") and all(n in err for n in needles), err


@pytest.mark.parametrize("method", list(RUNS))
def test_score_and_recommend_files(method, runs, tmp_path, capsys):
    run = runs / method
    rec = Recommender.from_pretrained(run)
    users, items = known_pairs(rec, 10)
    pairs = tmp_path / "pairs.csv"
    pd.DataFrame({"user_id": users, "item_id": items}).to_csv(pairs, index=False)
    out = tmp_path / "scores.csv"
    assert main(["score", str(run), str(pairs), "--output", str(out)]) == 0
    got = pd.read_csv(out, dtype={"user_id": str, "item_id": str})
    assert list(got.columns) == ["user_id", "item_id", "score"]
    pd.testing.assert_frame_equal(got, rec.score_csv(pairs), check_dtype=False)
    # chunked the same as whole
    assert rec.score_stream(pairs, tmp_path / "chunked.csv", chunk=3) == 10
    assert (tmp_path / "chunked.csv").read_text() == out.read_text()
    captured = capsys.readouterr()
    assert f"wrote 10 scores to {out}" in captured.out and "pair" in captured.err  # the progress bar
    # users: one id a line, or a CSV with a user_id column
    plain, table = tmp_path / "users.txt", tmp_path / "users.csv"
    plain.write_text("\n".join(users[:3]) + "\n\n")
    table.write_text("name,user_id\n" + "".join(f"x,{u}\n" for u in users[:3]))
    for src in (plain, table):
        dest = tmp_path / f"top-{src.suffix[1:]}.csv"
        assert main(["recommend", str(run), "--users", str(src), "-k", "2", "--output", str(dest),
                     "--no-progress"]) == 0
        top = pd.read_csv(dest, dtype=str, keep_default_na=False)
        assert list(top.columns) == ["user_id", "rank", "item_id", "title", "score"] and len(top) == 6
        for u in users[:3]:
            want = rec.recommend(u, 2)
            rows = top[top["user_id"] == u]
            assert rows["item_id"].tolist() == [i for i, _, _ in want] and rows["rank"].tolist() == ["1", "2"]
    assert "top-2 lists of 3 users" in capsys.readouterr().out


def test_unknown_ids_name_the_file_and_row_and_leave_no_output(runs, tmp_path, capsys):
    run = str(runs / "mf")
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("user_id,item_id\nu_1,i3\nu_1,i4\nu_nobody,i3\n")
    out = tmp_path / "out.csv"
    capsys.readouterr()
    assert main(["score", run, str(pairs), "--output", str(out)]) == 2
    one_line(capsys, "pairs.csv: row 4: user u_nobody is not in the run's data")
    assert not out.exists() and os.listdir(tmp_path) == ["pairs.csv"]
    assert main(["score", run, str(pairs), "--output", str(out), "--cold-start", "popularity"]) == 0
    assert pd.read_csv(out)["cold_start"].tolist() == [False, False, True]
    capsys.readouterr()
    users = tmp_path / "users.txt"
    users.write_text("u_1\nu_2\nu_nobody\n")
    top = tmp_path / "top.csv"
    assert main(["recommend", run, "--users", str(users), "--output", str(top)]) == 2
    one_line(capsys, "users.txt: row 3: user u_nobody is not in the run's data")
    assert not top.exists()
    assert main(["recommend", run, "--users", str(users), "-k", "2", "--output", str(top), "--cold-start",
                 "popularity"]) == 0
    assert pd.read_csv(top)["cold_start"].tolist() == [False] * 4 + [True] * 2
    capsys.readouterr()
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    assert main(["recommend", run, "--users", str(bad)]) == 2
    one_line(capsys, "bad.csv: row 1", "no user_id column")
    assert main(["recommend", run, "--user", "u_1", "--users", str(users)]) == 2
    one_line(capsys, "exactly one of")


def test_a_failure_midway_leaves_no_half_file(runs, tmp_path):
    rec = Recommender.from_pretrained(runs / "mf")
    users, items = known_pairs(rec, 12)
    pairs = tmp_path / "pairs.csv"
    pd.DataFrame({"user_id": users, "item_id": items}).to_csv(pairs, index=False)
    real, calls = rec._score, []

    def failing(u, i):
        calls.append(len(u))
        if len(calls) == 2:
            raise KeyboardInterrupt  # as if the run were killed during the second chunk
        return real(u, i)

    rec._score = failing
    with pytest.raises(KeyboardInterrupt):
        rec.score_stream(pairs, tmp_path / "out.csv", chunk=5)
    assert sorted(os.listdir(tmp_path)) == ["pairs.csv"]


def test_memory_is_flat_in_the_input_size(runs, tmp_path):
    rec = Recommender.from_pretrained(runs / "mf")
    peaks = {}
    for n in (2_000, 20_000):
        users, items = known_pairs(rec, n)
        pairs = tmp_path / f"pairs{n}.csv"
        pd.DataFrame({"user_id": users, "item_id": items}).to_csv(pairs, index=False)
        del users, items
        tracemalloc.start()
        assert rec.score_stream(pairs, tmp_path / f"out{n}.csv", chunk=1000) == n
        peaks[n] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peaks[20_000] < 2 * peaks[2_000], peaks  # ten times the rows, not ten times the memory


def test_python_api_recommend_many(runs):
    rec = Recommender.from_pretrained(runs / "popularity-holdout")
    users = [rec.ids.user_out(u) for u in sorted(rec.ids.known_users)[:2]]
    got = list(rec.recommend_many(users + ["u_nobody"], k=2, cold_start="popularity"))
    assert [u for u, _, _ in got] == users + ["u_nobody"] and [c for _, _, c in got] == [False, False, True]
    with pytest.raises(LlmrecError, match="user u_nobody is not in the run's data"):
        list(rec.recommend_many(["u_nobody"], k=2))
