"""The dataset's own ids end to end, and one rule for unknown ids, on every family: a CSV whose users are named
like "u_alice" and items like "tt0000003" (one with a blank title), tiny runs of MF (click), sasrec-rank and
popularity-rank (sequence), Mult-VAE and popularity-holdout (holdout)."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from llmrec.cli import main
from llmrec.errors import LlmrecError
from llmrec.recommender import Recommender

from synthetic import train_raw_id_runs

RUNS = {
    "mf": ["data.cuts=[0.7, 0.85]", "collab.epochs=2"],
    "sasrec-rank": ["seqrank.epochs=2", "seqrank.progress=false", "seqrank.model={dim: 16, blocks: 1}"],
    "popularity-rank": [],
    "multvae": ["holdout.min_count=1", "multvae.hidden=16", "multvae.latent=4", "multvae.batch_size=16",
                "multvae.epochs=2", "multvae.progress=false"],
    "popularity-holdout": ["holdout.min_count=1"],
}


def raw_item(i: int) -> str:
    return f"tt{i:07d}"


def raw_user(u: int) -> str:
    return "u_alice" if u == 1 else f"u_{u}"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One trained run per method on the same raw-id CSV (module scope: trained once)."""
    return train_raw_id_runs(tmp_path_factory.mktemp("raw"), RUNS, raw_user, raw_item, blank_title_item=2)


def printed(out: str) -> list[list[str]]:
    """`llmrec recommend` lines split into rank, score, item id, title."""
    return [line.split(None, 3) for line in out.splitlines() if line.strip()]


def one_line(capsys, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("llmrec: error:"), err
    assert "Traceback" not in err and all(n in err for n in needles), err
    return err


def pairs_csv(path, rows, header="user_id,item_id") -> str:
    path.write_text(header + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return str(path)


@pytest.mark.parametrize("method", list(RUNS))
def test_recommend_and_score_take_and_show_raw_ids(method, runs, tmp_path, capsys):
    run = str(runs / method)
    split_meta = json.loads((runs / method / "split" / "split.json").read_text())["meta"]
    assert "u_alice" in split_meta["raw_user_ids"] and raw_item(3) in split_meta["raw_item_ids"]
    capsys.readouterr()
    assert main(["recommend", run, "--user", "u_alice", "-k", "3"]) == 0
    lines = printed(capsys.readouterr().out)
    assert len(lines) == 3 and all(item.startswith("tt") for _, _, item, _ in lines)
    # a blank title is shown as the raw id
    assert main(["recommend", run, "--user", "u_alice", "-k", "2", "--candidates", f"{raw_item(2)},{raw_item(3)}"]) == 0
    lines = printed(capsys.readouterr().out)
    assert {item for _, _, item, _ in lines} == {raw_item(2), raw_item(3)}
    assert [title for _, _, item, title in lines if item == raw_item(2)] == [raw_item(2)]
    # score: raw ids in, raw ids out, the model's ranking score
    pairs = pairs_csv(tmp_path / "pairs.csv", [("u_alice", raw_item(3)), ("u_2", raw_item(4))])
    assert main(["score", run, pairs]) == 0
    scored = pd.read_csv(pd.io.common.StringIO(capsys.readouterr().out), dtype=str)
    assert scored["user_id"].tolist() == ["u_alice", "u_2"] and scored["item_id"].tolist() == [raw_item(3), raw_item(4)]
    assert pd.to_numeric(scored["score"]).notna().all()
    # internal ids on request
    assert main(["recommend", run, "--user", "1", "--internal-ids", "-k", "2"]) == 0
    assert all(item.isdigit() for _, _, item, _ in printed(capsys.readouterr().out))


@pytest.mark.parametrize("method", list(RUNS))
def test_unknown_ids_one_rule_everywhere(method, runs, tmp_path, capsys):
    run = str(runs / method)
    capsys.readouterr()
    before = sorted(p.name for p in (runs / method).iterdir())
    assert main(["recommend", run, "--user", "999999"]) == 2
    one_line(capsys, "user 999999 is not in the run's data (", "users)")
    assert main(["recommend", run, "--user", "u_bob", "-k", "3", "--cold-start", "popularity"]) == 0
    popular = [item for _, _, item, _ in printed(capsys.readouterr().out)]
    assert len(popular) == 3 and all(i.startswith("tt") for i in popular)
    assert main(["recommend", run, "--user", "u_alice", "--candidates", "tt9999999"]) == 2
    one_line(capsys, "candidates", "item tt9999999 is not in the run's data")
    assert main(["recommend", run, "--user", "u_alice", "-k", "0"]) == 2
    one_line(capsys, "-k", "0")
    assert main(["recommend", run, "--user", "u_alice", "--candidates", ","]) == 2
    one_line(capsys, "--candidates")
    pairs = pairs_csv(tmp_path / "p.csv", [("u_alice", raw_item(3)), ("u_bob", raw_item(3))])
    assert main(["score", run, pairs]) == 2
    one_line(capsys, "p.csv", "row 3", "user u_bob is not in the run's data")
    assert main(["score", run, pairs, "--cold-start", "popularity"]) == 0
    scored = pd.read_csv(pd.io.common.StringIO(capsys.readouterr().out))
    assert scored["cold_start"].tolist() == [False, True] and 0 < scored["score"].iloc[1] < 1
    assert sorted(p.name for p in (runs / method).iterdir()) == before  # nothing written into the run


def test_python_api_takes_and_returns_raw_ids(runs):
    for method in RUNS:
        rec = Recommender.from_pretrained(runs / method)
        top = rec.recommend("u_alice", k=3)
        assert all(isinstance(i, str) and i.startswith("tt") for i, _, _ in top), method
        alice = rec.ids.user("u_alice")
        internal = rec.recommend(alice, k=3, internal_ids=True)
        assert [rec.ids.item_out(i) for i, _, _ in internal] == [i for i, _, _ in top]
        assert rec.score(["u_alice"], [top[0][0]])[0] == pytest.approx(
            rec.score([alice], [rec.ids.item(top[0][0])], internal_ids=True)[0], abs=1e-5)
        with pytest.raises(LlmrecError, match="user 999999 is not in the run's data"):
            rec.recommend(999999)
        with pytest.raises(LlmrecError, match="item tt9999999 is not in the run's data"):
            rec.score(["u_alice"], ["tt9999999"])
        assert rec.score(["u_x"], ["tt9999999"], cold_start="popularity")[0] == 0.0
        with pytest.raises(LlmrecError, match="cold_start"):
            rec.recommend("u_alice", cold_start="random")


def test_new_user_items_in_raw_ids(runs, capsys):
    run = str(runs / "multvae")
    capsys.readouterr()
    assert main(["recommend", run, "--items", f"{raw_item(3)},{raw_item(5)}", "-k", "3"]) == 0
    items = [item for _, _, item, _ in printed(capsys.readouterr().out)]
    assert len(items) == 3 and not {raw_item(3), raw_item(5)} & set(items)
    assert main(["recommend", run, "--items", ","]) == 2
    one_line(capsys, "--items")
    assert main(["recommend", run, "--items", "tt9999999"]) == 2
    one_line(capsys, "items", "tt9999999")
    assert main(["recommend", str(runs / "mf"), "--items", raw_item(3)]) == 2
    one_line(capsys, "mf run cannot recommend from a new user's items")


def test_pairs_row_with_an_extra_field_is_an_error(runs, tmp_path, capsys):
    pairs = tmp_path / "extra.csv"
    pairs.write_text("user_id,item_id\nu_alice,tt0000003\n7,50,1\n")
    capsys.readouterr()
    assert main(["score", str(runs / "mf"), str(pairs)]) == 2
    one_line(capsys, "extra.csv", "row 3", "3 fields", "header has 2")
    assert main(["score", str(runs / "mf"), pairs_csv(tmp_path / "empty.csv", [])]) == 2
    one_line(capsys, "empty.csv", "no (user_id, item_id) rows")
    assert main(["score", str(runs / "mf"), pairs_csv(tmp_path / "cols.csv", [("a", "b")], "user,item")]) == 2
    one_line(capsys, "cols.csv", "missing column")


def test_run_without_raw_maps_works_on_internal_ids(runs, tmp_path, capsys):
    import shutil
    old = tmp_path / "old"
    shutil.copytree(runs / "mf", old)
    info = json.loads((old / "split" / "split.json").read_text())
    del info["meta"]["raw_user_ids"], info["meta"]["raw_item_ids"]
    (old / "split" / "split.json").write_text(json.dumps(info))
    capsys.readouterr()
    assert main(["recommend", str(old), "--user", "1", "-k", "2"]) == 0
    captured = capsys.readouterr()
    assert all(item.isdigit() for _, _, item, _ in printed(captured.out))
    assert "no raw id maps" in captured.err and len(captured.err.strip().splitlines()) == 1
