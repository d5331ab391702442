"""bench.curves reads fit's evaluation logs and draws metric vs samples and minutes."""
import json

import pytest

from bench import curves


def test_curves_from_run_dirs_and_logs(tmp_path):
    run = tmp_path / "run"
    for stage, aucs in (("stage1", [0.5]), ("stage2", [0.6, 0.7])):
        log = run / f"{stage}_train" / "checkpoint" / "log.jsonl"
        log.parent.mkdir(parents=True)
        log.write_text("".join(json.dumps({"step": 10 * (k + 1), "samples": 160 * (k + 1),
                                           "train_seconds": 60.0 * (k + 1), "auc": a}) + "\n"
                               for k, a in enumerate(aucs)))
    out = tmp_path / "c.png"
    table = curves.main([str(out), f"{run}=mine", str(run / "stage1_train" / "checkpoint" / "log.jsonl"),
                         "--line", "BinMF=0.72"])
    assert out.read_bytes()[:4] == b"\x89PNG"
    lines = table.splitlines()
    assert len(lines) == 2 + 3  # header, rule, the last stage's two points and the explicit log's one
    assert "| mine | 20 | 320 | 2.0 | 0.7000 |" in table
    with pytest.raises(SystemExit, match="no stage3_train"):
        curves.main([str(out), str(run), "--stage", "stage3"])


def test_curves_prefer_a_runs_metrics_curve(tmp_path):
    run = tmp_path / "cllm4rec"
    run.mkdir()
    curve = [{"step": 0, "samples": 0, "train_seconds": 0.0, "recall@20": 0.1},
             {"step": 5, "samples": 80, "train_seconds": 30.0, "recall@20": 0.3}]
    (run / "metrics.json").write_text(json.dumps({"test": {}, "curve": curve}))
    table = curves.main([str(tmp_path / "c.png"), str(run), "--metric", "recall@20"])
    assert "| cllm4rec | 5 | 80 | 0.5 | 0.3000 |" in table
