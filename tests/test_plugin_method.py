"""A method defined outside the package joins through the registry alone, and every command drives it: in-process
with `register`, and in a fresh `python -m llmrec` through the `llmrec.methods` entry point of an installed
distribution."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np

from llmrec.cli import main
from llmrec.methods import registry

from synthetic import CSV_OPTIONS

TOY = '''
"""item-ctr: every item scored by its share of clicks among its train rows (a toy click method)."""
import numpy as np

from llmrec.methods.click_recommender import ClickRecommender
from llmrec.metrics import frame_metrics
from llmrec.methods.registry import Method


def _ctr(split):
    train = split.train
    clicks = np.bincount(train["item_id"], weights=train["label"], minlength=split.n_items)
    rows = np.bincount(train["item_id"], minlength=split.n_items)
    return (clicks + 1) / (rows + 2)


def train(cfg, split, run, tracker=None):
    ctr = _ctr(split)
    run.save_json("ctr.json", ctr.tolist())
    return {"test": frame_metrics(split.test, ctr[split.test["item_id"].to_numpy()], intervals=True)}


def load_recommender(run, split):
    ctr = np.asarray(run.load_json("ctr.json"))
    return ClickRecommender(run, split, collab=lambda frame: ctr[frame["item_id"].to_numpy()])


METHOD = Method("item-ctr", "click", __name__, "item click-through rate")
'''


def _overrides(csv_data):
    return ["data.dataset=csv", f"data.path={csv_data}", CSV_OPTIONS, "data.cuts=[0.7, 0.85]"]


def test_registered_toy_method_runs_every_command(csv_data, tmp_path, capsys, monkeypatch):
    (tmp_path / "toy_method.py").write_text(TOY)
    monkeypatch.syspath_prepend(str(tmp_path))
    import toy_method

    registry.register(toy_method.METHOD)
    try:
        run = tmp_path / "run"
        assert main(["train", "item-ctr", "--out", str(run), *_overrides(csv_data)]) == 0
        assert "| item-ctr |" in capsys.readouterr().out
        assert json.loads((run / "metrics.json").read_text())["method"] == "item-ctr"
        assert main(["evaluate", str(run), "--parts", "valid,test"]) == 0
        assert "| valid |" in capsys.readouterr().out
        assert main(["recommend", str(run), "--user", "1", "-k", "3"]) == 0
        top = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
        assert len(top) == 3
        bench = tmp_path / "bench"
        assert main(["benchmark", "--methods", "popularity,item-ctr", "--out", str(bench),
                     *_overrides(csv_data)]) == 0
        results = json.loads((bench / "results.json").read_text())
        assert set(results) == {"popularity", "item-ctr"}
        assert 0 <= results["item-ctr"]["test"]["auc"] <= 1
        # the recommender is the toy's: its score is the smoothed click rate of the item
        from llmrec.recommender import Recommender
        rec = Recommender.from_pretrained(run)
        ctr = np.asarray(json.loads((run / "ctr.json").read_text()))
        s = rec.score([1], [2], internal_ids=True)
        assert np.isclose(s[0], ctr[2])
    finally:
        registry.unregister("item-ctr")
    assert main(["train", "item-ctr", *_overrides(csv_data)]) == 2
    assert "unknown method 'item-ctr'" in capsys.readouterr().err


def test_entry_point_plugin_runs_in_a_fresh_process(csv_data, tmp_path):
    site = tmp_path / "site"
    (site / "toy_llmrec-0.1.dist-info").mkdir(parents=True)
    (site / "toy_llmrec.py").write_text(TOY)
    (site / "toy_llmrec-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-llmrec\n"
                                                                 "Version: 0.1\n")
    (site / "toy_llmrec-0.1.dist-info" / "entry_points.txt").write_text(
        "[llmrec.methods]\nitem-ctr = toy_llmrec:METHOD\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), *sys.path]), "OMP_NUM_THREADS": "1"}
    run = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "llmrec", "train", "item-ctr", "--out", str(run),
                           *_overrides(csv_data)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "| item-ctr |" in done.stdout
    shown = subprocess.run([sys.executable, "-m", "llmrec", "train", "--help"], env=env, capture_output=True,
                           text=True, timeout=300)
    assert "item-ctr" in textwrap.dedent(shown.stdout).replace("\n", " ")
