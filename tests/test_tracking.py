"""Experiment tracking (`report_to`): one method of each family trains with TensorBoard on, and the event files
are read back; off, nothing is written; a bad tracker is one line before a run exists; a resumed run appends."""
from __future__ import annotations

import json
import math

import pytest

from llmrec import experiment, tracking
from llmrec.cli import main
from llmrec.errors import LlmrecError

from synthetic import CSV_OPTIONS

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

TB = ["report_to=tensorboard"]
TINY_LLM = ["llm.backbone=tiny", "collab.epochs=2", "stage1.max_samples=16", "stage1.batch_size=8",
            "stage1.eval_every=1", "stage1.eval_rows=24", "stage2.max_samples=8", "stage2.batch_size=4",
            "stage2.eval_every=1", "stage2.eval_rows=24", "eval.test_rows=24", "eval.batch_size=8"]
SEQRANK = ["seqrank.epochs=3", "seqrank.eval_every=1", "seqrank.progress=false",
           "seqrank.model={dim: 16, blocks: 1}"]
MULTVAE = ["multvae.hidden=32", "multvae.latent=8", "multvae.batch_size=16", "multvae.epochs=3",
           "multvae.progress=false"]


@pytest.fixture
def data(csv_data):
    return ["data.dataset=csv", f"data.path={csv_data}", "data.cuts=[0.7, 0.85]", CSV_OPTIONS]


def scalars(run) -> dict[str, list[tuple[int, float]]]:
    """Every scalar tag of the run's TensorBoard events: [(step, value)] in the order written."""
    acc = EventAccumulator(str(run / "tracking" / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def check(logged: dict, tags: list[str], points: dict[str, int] | None = None) -> None:
    """Each tag is there with finite values at strictly increasing steps (and as many points as given)."""
    missing = [t for t in tags if t not in logged]
    assert not missing, f"missing {missing}; logged {sorted(logged)}"
    for tag in tags:
        steps = [s for s, _ in logged[tag]]
        assert all(math.isfinite(v) for _, v in logged[tag]), tag
        assert steps == sorted(set(steps)), (tag, steps)
    for tag, n in (points or {}).items():
        assert len(logged[tag]) == n, (tag, logged[tag])


def test_llm_click_method_logs_every_stage(data, tmp_path):
    run = tmp_path / "collm"
    assert main(["train", "collm", "--out", str(run), *data, *TINY_LLM, *TB]) == 0
    logged = scalars(run)
    per_step = ["train_loss", "lr", "tokens_per_s", "samples_per_s", "valid_auc", "valid_uauc"]
    check(logged, [f"stage1/{t}" for t in per_step] + [f"stage2/{t}" for t in per_step]
          + ["collab/train_loss", "collab/lr", "collab/samples_per_s", "collab/valid_auc", "test/auc"],
          {"stage1/train_loss": 2, "stage1/valid_auc": 2, "stage2/train_loss": 2, "collab/valid_auc": 2,
           "test/auc": 1})
    assert [s for s, _ in logged["stage1/lr"]] == [1, 2]
    assert all(v > 0 for _, v in logged["stage1/tokens_per_s"])


def test_classic_click_model_logs_epochs(data, tmp_path):
    run = tmp_path / "mf"
    assert main(["train", "mf", "--out", str(run), *data, "collab.epochs=3", *TB]) == 0
    logged = scalars(run)
    check(logged, ["collab/train_loss", "collab/lr", "collab/samples_per_s", "collab/valid_auc",
                   "collab/valid_uauc", "test/auc", "test/uauc"], {"collab/train_loss": 3, "test/auc": 1})
    assert [s for s, _ in logged["collab/valid_auc"]] == [1, 2, 3]


def test_sequence_method_logs_epochs(data, tmp_path):
    run = tmp_path / "seqrank"
    assert main(["train", "sasrec-rank", "--out", str(run), *data, *SEQRANK, *TB]) == 0
    check(scalars(run), ["seqrank/train_loss", "seqrank/lr", "seqrank/samples_per_s", "seqrank/valid_ndcg@10",
                         "seqrank/valid_hr@10", "test/ndcg@10"], {"seqrank/valid_ndcg@10": 3})


def test_holdout_method_logs_epochs(data, tmp_path):
    run = tmp_path / "multvae"
    assert main(["train", "multvae", "--out", str(run), *data, "holdout.min_count=1", *MULTVAE, *TB]) == 0
    check(scalars(run), ["multvae/train_loss", "multvae/kl", "multvae/beta", "multvae/lr", "multvae/samples_per_s",
                         "multvae/valid_ndcg@100", "multvae/valid_recall@20", "test/ndcg@100"],
          {"multvae/train_loss": 3})


LCREC = ["llm.backbone=tiny", "lcrec.text_encoder=backbone", "lcrec.max_steps=2", "lcrec.eval_every=1",
         "lcrec.batch_size=4", "lcrec.valid_users=4", "lcrec.test_users=6", "lcrec.num_beams=5",
         "lcrec.eval_batch_size=3",
         "lcrec.rqvae={levels: 3, codebook_size: 4, e_dim: 8, epochs: 4, batch_size: 32, eval_every: 2}"]
CLLM4REC = ["llm.backbone=tiny", "cllm4rec.device=cpu", "cllm4rec.content_epochs=0.5",
            "cllm4rec.alternate_epochs=0.5", "cllm4rec.max_content_docs=16", "cllm4rec.pretrain_batch_size=8",
            "cllm4rec.finetune_epochs=1", "cllm4rec.finetune_batch_size=8", "cllm4rec.eval_every=2",
            "cllm4rec.patience=null", "cllm4rec.max_valid_users=8", "holdout.min_count=1"]


def test_lcrec_logs_indexer_and_fine_tuning(data, tmp_path):
    run = tmp_path / "lcrec"
    assert main(["train", "lcrec", "--out", str(run), *data, *LCREC, *TB]) == 0
    check(scalars(run), ["rqvae/train_loss", "rqvae/recon", "rqvae/lr", "rqvae/samples_per_s", "rqvae/valid_collision_rate",
                         "sft/train_loss", "sft/lr", "sft/tokens_per_s", "sft/valid_ndcg@10", "test/ndcg@10"],
          {"rqvae/train_loss": 4, "rqvae/valid_collision_rate": 2, "sft/train_loss": 2, "sft/valid_ndcg@10": 2})


def test_cllm4rec_logs_every_stage(data, tmp_path):
    run = tmp_path / "cllm4rec"
    assert main(["train", "cllm4rec", "--out", str(run), *data, *CLLM4REC, *TB]) == 0
    check(scalars(run), ["pretrain-content/train_loss", "pretrain-content/lr", "pretrain-content/tokens_per_s",
                         "pretrain-alternate/train_loss", "finetune/train_loss", "finetune/lr",
                         "finetune/valid_ndcg@100", "test/ndcg@100"])


def test_without_report_to_nothing_is_written_and_results_are_the_same(data, tmp_path):
    off, on = tmp_path / "off", tmp_path / "on"
    assert main(["train", "mf", "--out", str(off), *data, "collab.epochs=2"]) == 0
    assert not (off / "tracking").exists()
    assert main(["train", "mf", "--out", str(on), *data, "collab.epochs=2", *TB]) == 0
    assert json.loads((off / "metrics.json").read_text())["test"] == json.loads((on / "metrics.json").read_text())["test"]


@pytest.mark.parametrize("value, message", [("tensorbord", "unknown tracker 'tensorbord'"),
                                            ("[none, tensorboard]", "'none' cannot be combined")])
def test_bad_tracker_is_one_line_and_no_run(data, tmp_path, capsys, value, message):
    run = tmp_path / "mf"
    assert main(["train", "mf", "--out", str(run), *data, f"report_to={value}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("llmrec: error:") and message in err, err
    assert not run.exists()


def test_tracker_not_installed_is_refused_before_the_run(data, tmp_path, monkeypatch):
    monkeypatch.setattr(tracking, "installed", lambda: [])
    with pytest.raises(LlmrecError, match=r"report_to: tensorboard is not installed \(pip install 'llmrec\[track\]'\)"):
        experiment.train(experiment.make_config("mf", None, [*data, *TB]), tmp_path / "mf")
    assert not (tmp_path / "mf").exists()
    assert tracking.resolve(["all"]) == [] and tracking.resolve("none") == []


def kill_after_epoch_two(monkeypatch):
    """Make the classic epoch loop stop (as a kill would) right after saving epoch 2; returns the real saver."""
    from llmrec.collab import loop

    save = loop.save_training_state

    def killed_after_two(path, tensors, optimizer, state, scheduler=None):
        save(path, tensors, optimizer, state, scheduler)
        if state["epoch"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(loop, "save_training_state", killed_after_two)
    return save


def test_resumed_run_appends_to_the_same_events(data, tmp_path, monkeypatch):
    from llmrec.collab import loop

    run = tmp_path / "mf"
    cfg = experiment.make_config("mf", None, [*data, "collab.epochs=4", *TB])
    save = kill_after_epoch_two(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        experiment.train(cfg, run)
    assert [s for s, _ in scalars(run)["collab/train_loss"]] == [1, 2]
    monkeypatch.setattr(loop, "save_training_state", save)
    uninterrupted = tmp_path / "whole"
    experiment.train(cfg, uninterrupted)
    experiment.train(cfg, run)
    logged, whole = scalars(run), scalars(uninterrupted)
    assert len(list((run / "tracking" / "tensorboard").glob("events.out.tfevents.*"))) == 2
    assert logged["collab/train_loss"] == whole["collab/train_loss"]  # steps 1-4, the same values
    assert logged["test/auc"] == whole["test/auc"]


def test_an_unfinished_run_may_resume_with_tracking_turned_on(data, tmp_path, monkeypatch):
    from llmrec.collab import loop

    run = tmp_path / "mf"
    save = kill_after_epoch_two(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        experiment.train(experiment.make_config("mf", None, [*data, "collab.epochs=4"]), run)
    assert not (run / "tracking").exists()
    monkeypatch.setattr(loop, "save_training_state", save)
    experiment.train(experiment.make_config("mf", None, [*data, "collab.epochs=4", *TB]), run)
    assert [s for s, _ in scalars(run)["collab/train_loss"]] == [3, 4]
    assert "report_to:\n- tensorboard" in (run / "config.yaml").read_text()


def test_tracker_scopes_and_skips_what_is_not_a_number():
    class Memory:
        def __init__(self):
            self.rows, self.closed = [], False

        def log(self, values, step=None):
            self.rows.append((step, values))

        def finish(self):
            self.closed = True

    backend = Memory()
    root = tracking.Tracker([backend])
    root.scope("stage1").scope("inner").log({"loss": 0.5, "auc": float("nan"), "name": "x", "ok": True}, 3)
    root.log({"nothing": None}, 4)
    assert backend.rows == [(3, {"stage1/inner/loss": 0.5})]
    root.finish()
    assert backend.closed and not root.active
    tracking.scoped(None, "stage1").log({"loss": 1.0}, 1)  # no tracker: a no-op


def test_wandb_gets_a_step_per_stage_and_mlflow_plain_names():
    class Run:
        defined = []

        def define_metric(self, name, step_metric=None):
            self.defined.append((name, step_metric))

    class Memory:
        def __init__(self):
            self.rows, self.run = [], Run()

        def log(self, values, step=None):
            self.rows.append((step, values))

    wandb, mlflow = Memory(), Memory()
    root = tracking.Tracker([tracking._StepPerStage(wandb), tracking._PlainNames(mlflow)])
    root.scope("stage2").log({"train_loss": 0.5}, 7)
    root.scope("test").log({"ndcg@10": 0.25}, 0)  # an earlier step than stage2's: W&B must not drop it
    assert wandb.rows == [(None, {"stage2/train_loss": 0.5, "stage2/step": 7}),
                          (None, {"test/ndcg@10": 0.25, "test/step": 0})]
    assert ("stage2/*", "stage2/step") in wandb.run.defined and ("test/*", "test/step") in wandb.run.defined
    assert mlflow.rows == [(7, {"stage2/train_loss": 0.5}), (0, {"test/ndcg_at_10": 0.25})]
