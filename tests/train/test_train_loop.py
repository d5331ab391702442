"""The generic training loop on a tiny MLP task: learning, selection, early stop, resume, schedule, 2 processes."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from llmrec.checkpoint import read_state
from llmrec.errors import LlmrecError
from llmrec.llm.train import OFFICIAL_SCHEDULE, TrainConfig, fit, predict_rows
from llmrec.metrics import auc

from launch import launch_cpu, results

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_tiny_task import RowIdTask, SimulatedKill, TinyTask, make_data, make_mlp  # noqa: E402

HERE = Path(__file__).resolve().parent


def data():
    (x, y), (xe, ye) = make_data(200, seed=1), make_data(60, seed=2)
    return x, y, xe, ye


def params(module):
    return [p.detach().clone() for p in module.parameters()]


def same(a, b):
    return all(torch.equal(u, v) for u, v in zip(a, b, strict=True))


def test_loss_decreases_and_model_learns(tmp_path):
    x, y, xe, ye = data()
    module = make_mlp(seed=0)
    evaluate = lambda s: {"auc": auc(ye.numpy(), s)}  # noqa: E731
    cfg = TrainConfig(lr=0.05, batch_size=16, epochs=8, eval_every=10, eval_at_start=True, log_every=5,
                      patience=None)
    res = fit(TinyTask(module, x, y), 200, 60, evaluate, cfg, tmp_path, eval_task=TinyTask(module, xe, ye))
    assert res.planned_steps == res.steps == 8 * (200 // 16)
    assert res.samples_seen == res.steps * 16
    losses = [r["loss"] for r in res.train_log]
    assert np.mean(losses[-3:]) < 0.5 * np.mean(losses[:2])
    assert res.history[0]["step"] == 0 and res.history[-1]["step"] == res.steps  # start and final evaluation
    assert res.best_metrics["auc"] == max(h["auc"] for h in res.history) > 0.9 > res.history[0]["auc"]
    # the module holds the best state, and its scores reproduce the best metric
    assert auc(ye.numpy(), predict_rows(TinyTask(module, xe, ye), 60, 7)) == res.best_metrics["auc"]
    assert len(res.step_seconds) == res.steps and res.tokens_per_second == pytest.approx(
        3 * res.samples_seen / res.train_seconds)


def test_best_state_is_restored_not_the_last(tmp_path):
    x, y, xe, ye = data()
    module = make_mlp(seed=0)
    snapshots, scripted = [], iter([0.6, 0.9, 0.7, 0.8, 0.5])  # best at the 2nd evaluation (step 4)

    def evaluate(scores):
        snapshots.append(params(module))
        return {"auc": next(scripted)}

    cfg = TrainConfig(lr=0.05, batch_size=16, max_steps=10, eval_every=2, patience=None, warmup_steps=0)
    res = fit(TinyTask(module, x, y), 200, 60, evaluate, cfg, tmp_path, eval_task=TinyTask(module, xe, ye))
    assert [h["step"] for h in res.history] == [2, 4, 6, 8, 10]
    assert res.best_step == 4 and res.best_metrics == {"auc": 0.9}
    assert [h["is_best"] for h in res.history] == [True, True, False, False, False]
    assert same(params(module), snapshots[1]) and not same(params(module), snapshots[-1])
    saved = load_file(tmp_path / "best" / "trainable.safetensors")
    assert same([saved[n] for n, _ in module.named_parameters()], snapshots[1])
    assert json.loads((tmp_path / "best" / "best.json").read_text())["step"] == 4
    log = [json.loads(line) for line in (tmp_path / "checkpoint" / "log.jsonl").read_text().splitlines()]
    assert [r["auc"] for r in log] == [0.6, 0.9, 0.7, 0.8, 0.5]


@pytest.mark.parametrize("higher", [True, False])
def test_early_stopping_after_patience_evaluations_without_gain(tmp_path, higher):
    x, y, xe, ye = data()
    module = make_mlp(seed=0)
    sign = 1 if higher else -1
    values = iter([sign * v for v in [0.5, 0.7, 0.7, 0.6, 0.69]] + [sign * 0.99] * 10)  # ties are no gain
    cfg = TrainConfig(lr=0.05, batch_size=16, max_steps=100, eval_every=3, patience=3)
    res = fit(TinyTask(module, x, y), 200, 60, lambda s: {"m": next(values)}, cfg, tmp_path,
              selection_metric="m", higher_is_better=higher, eval_task=TinyTask(module, xe, ye))
    assert res.stopped_early and res.steps == 15 and len(res.history) == 5  # gains at evals 1-2, then 3 without
    assert res.best_step == 6 and res.best_metrics["m"] == sign * 0.7
    assert res.planned_steps == 100


@pytest.mark.parametrize("num_workers,checkpoint_every,resume_step", [(0, None, 12), (1, 5, 15)])
def test_resume_after_kill_matches_uninterrupted_run(tmp_path, num_workers, checkpoint_every, resume_step):
    x, y, xe, ye = data()
    cfg = TrainConfig(lr=0.03, batch_size=8, grad_accum_steps=2, epochs=2, eval_every=4, warmup_steps=3,
                      patience=None, log_every=2, num_workers=num_workers,
                      checkpoint_every=checkpoint_every)  # 25 steps

    def run(out, fail_at=None):
        module = make_mlp(seed=0, dropout=0.3)  # dropout: the RNG state must be resumed too
        task = TinyTask(module, x, y, fail_at=fail_at)
        evaluate = lambda s: {"auc": auc(ye.numpy(), s)}  # noqa: E731
        if fail_at is None:
            return module, task, fit(task, 200, 60, evaluate, cfg, out, eval_task=TinyTask(module, xe, ye))
        with pytest.raises(SimulatedKill):
            fit(task, 200, 60, evaluate, cfg, out, eval_task=TinyTask(module, xe, ye))
        task.fail_at = None
        return module, task, fit(task, 200, 60, evaluate, cfg, out, eval_task=TinyTask(module, xe, ye))

    m_ref, t_ref, ref = run(tmp_path / "ref")
    # kill in loss call 31 = optimizer step 16 (2 micro-batches each), in epoch 2, after the checkpoint at
    # step 12 (evaluation) or 15 (checkpoint_every=5)
    m_res, t_res, res = run(tmp_path / "resumed", fail_at=31)
    assert same(params(m_res), params(m_ref))
    final = [load_file(p / "checkpoint" / "state.safetensors") for p in (tmp_path / "ref", tmp_path / "resumed")]
    assert final[0].keys() == final[1].keys() and all(torch.equal(final[0][k], final[1][k]) for k in final[0])
    strip = lambda hs: [{k: v for k, v in h.items() if k not in ("train_seconds", "step_seconds")} for h in hs]  # noqa
    assert strip(res.history) == strip(ref.history) and strip(res.train_log) == strip(ref.train_log)
    assert (res.steps, res.best_step, res.samples_seen) == (ref.steps, ref.best_step, ref.samples_seen)
    assert len(res.step_seconds) == ref.steps - resume_step  # the second call trained from the checkpoint
    # the same batches after the resume point: rows collated in the resumed call = the reference's tail
    tail = t_res.seen_rows[-len(res.step_seconds) * 2:]
    assert tail == t_ref.seen_rows[-len(tail):]
    # each epoch is one permutation of the rows, reshuffled per epoch
    epoch1, epoch2 = sum(t_ref.seen_rows[:25], []), sum(t_ref.seen_rows[25:], [])
    assert sorted(epoch1) == sorted(epoch2) == list(range(200)) and epoch1 != epoch2

    # a finished run called again returns its result without training
    again = fit(TinyTask(m_res, x, y), 200, 60, lambda s: {"auc": auc(ye.numpy(), s)}, cfg, tmp_path / "resumed",
                eval_task=TinyTask(m_res, xe, ye))
    assert again.steps == ref.steps and again.step_seconds == [] and same(params(m_res), params(m_ref))


def test_nan_first_evaluation_does_not_block_later_gains(tmp_path):
    x, y, xe, ye = data()
    module = make_mlp(seed=0)
    values = iter([float("nan"), 0.6, float("nan"), 0.5])
    cfg = TrainConfig(lr=0.05, batch_size=16, max_steps=8, eval_every=2, patience=2)
    res = fit(TinyTask(module, x, y), 200, 60, lambda s: {"auc": next(values)}, cfg, tmp_path,
              eval_task=TinyTask(module, xe, ye))
    assert res.best_step == 4 and [h["is_best"] for h in res.history] == [True, True, False, False]
    assert res.stopped_early is False and res.steps == 8


def test_changed_settings_refuse_to_resume(tmp_path):
    x, y, xe, ye = data()
    module = make_mlp(seed=0)
    cfg = TrainConfig(lr=0.05, batch_size=16, max_steps=4, eval_every=2)
    fit(TinyTask(module, x, y), 200, 60, lambda s: {"auc": 0.5}, cfg, tmp_path, eval_task=TinyTask(module, xe, ye))
    cfg.lr = 0.01
    with pytest.raises(LlmrecError, match=r"checkpoint: written with lr=0.05, now 0.01"):
        fit(TinyTask(module, x, y), 200, 60, lambda s: {"auc": 0.5}, cfg, tmp_path,
            eval_task=TinyTask(module, xe, ye))


def test_finished_run_given_a_larger_budget_continues_as_a_straight_run(tmp_path):
    """Budget fields (max_steps, epochs, max_samples, patience, eval_every) may change on resume: a finished run
    given more steps continues from its checkpoint. With a schedule that does not depend on the plan (fixed
    warm-up, decay_steps set) the result equals one straight run of the larger budget."""
    x, y, xe, ye = data()

    def run(max_steps, out, module):
        cfg = TrainConfig(lr=0.05, batch_size=16, max_steps=max_steps, eval_every=4, patience=None, warmup_steps=2,
                          decay_steps=40)
        return fit(TinyTask(module, x, y), 200, 60, lambda s: {"auc": auc(ye.numpy(), s)}, cfg, out,
                   eval_task=TinyTask(module, xe, ye))

    m_ref = make_mlp(seed=0)
    ref = run(16, tmp_path / "straight", m_ref)
    first = run(8, tmp_path / "grown", make_mlp(seed=0))
    assert first.steps == 8
    m_cont = make_mlp(seed=0)
    cont = run(16, tmp_path / "grown", m_cont)
    assert cont.steps == 16 and len(cont.step_seconds) == 8  # only the new steps ran
    assert cont.best_step == ref.best_step and cont.best_metrics == ref.best_metrics
    assert [h["step"] for h in cont.history] == [h["step"] for h in ref.history]
    assert same(params(m_cont), params(m_ref))


def test_checkpoint_of_the_older_layout_is_refused_not_overwritten(tmp_path):
    x, y, xe, ye = data()
    old = tmp_path / "checkpoint"
    old.mkdir()
    (old / "state.json").write_text("{}")  # format 1: state.json + optim.pt + rng.json
    cfg = TrainConfig(lr=0.05, batch_size=16, max_steps=4, eval_every=2)
    module = make_mlp(seed=0)
    with pytest.raises(LlmrecError, match="older llmrec"):
        fit(TinyTask(module, x, y), 200, 60, lambda s: {"auc": 0.5}, cfg, tmp_path, eval_task=TinyTask(module, xe, ye))
    assert (old / "state.json").read_text() == "{}"


def test_warmup_then_cosine_once_for_the_whole_run(tmp_path):
    x, y, _, _ = data()
    base, warmup, total = 0.1, 4, 30  # 30 steps of 16 rows over 200 rows: 2.5 epochs, warm-up not restarted
    cfg = TrainConfig(lr=base, batch_size=16, max_steps=total, warmup_steps=warmup, log_every=1, patience=None)
    res = fit(TinyTask(make_mlp(seed=0), x, y), 200, None, None, cfg, tmp_path)

    def reference(step):  # lr used by optimizer step `step` (0-based)
        if step < warmup:
            return base * step / warmup
        return base * 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))

    assert [r["lr"] for r in res.train_log] == pytest.approx([reference(s) for s in range(total)], abs=1e-12)
    # warmup_ratio: ceil(ratio x planned steps)
    res = fit(TinyTask(make_mlp(seed=0), x, y), 200, None, None,
              TrainConfig(lr=base, batch_size=16, max_steps=total, warmup_ratio=0.1, log_every=1), tmp_path / "r")
    assert [r["lr"] for r in res.train_log[:4]] == pytest.approx([0, base / 3, 2 * base / 3, base])
    # without evaluation the final state is the result
    assert res.best_step == total and (tmp_path / "r" / "best" / "trainable.safetensors").is_file()


def test_default_schedule_is_transformers_cosine_to_the_bit(tmp_path):
    from transformers import get_cosine_schedule_with_warmup

    x, y, _, _ = data()
    base, total = 0.1, 37
    res = fit(TinyTask(make_mlp(seed=0), x, y), 200, None, None,
              TrainConfig(lr=base, batch_size=16, max_steps=total, warmup_ratio=0.1, log_every=1), tmp_path)
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base)
    sched = get_cosine_schedule_with_warmup(opt, num_warmup_steps=4, num_training_steps=total)
    expected = []
    for _ in range(total):
        expected.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert [r["lr"] for r in res.train_log] == expected  # exactly: runs made before the option reproduce


class OfficialScheduler:
    """The official BinLLM / CoLLM LinearWarmupCosineLRScheduler (minigpt4/common/optims.py), transcribed; the
    official loop calls step(epoch, i) before optimizer step i of each `iters_per_epoch`-step epoch."""

    def __init__(self, max_epoch, iters_per_epoch, min_lr, init_lr, warmup_steps, warmup_start_lr):
        self.max_epoch, self.iters_per_epoch, self.min_lr = max_epoch, iters_per_epoch, min_lr
        self.init_lr, self.warmup_steps, self.warmup_start_lr = init_lr, warmup_steps, warmup_start_lr

    def lr(self, cur_epoch, cur_step):
        total_cur_step = cur_epoch * self.iters_per_epoch + cur_step
        if total_cur_step < self.warmup_steps:  # warmup_lr_schedule(step=cur_step, ...)
            return min(self.init_lr, self.warmup_start_lr
                       + (self.init_lr - self.warmup_start_lr) * cur_step / max(self.warmup_steps, 1))
        return (self.init_lr - self.min_lr) * 0.5 * (  # cosine_lr_schedule(epoch=total_cur_step, ...)
            1.0 + math.cos(math.pi * total_cur_step / (self.max_epoch * self.iters_per_epoch))) + self.min_lr


def official_run(tmp_path, total, fail_at=None):
    x, y, _, _ = data()
    cfg = TrainConfig(lr=1e-3, batch_size=16, max_steps=total, log_every=1, checkpoint_every=7, **OFFICIAL_SCHEDULE)
    task = TinyTask(make_mlp(seed=0), x, y, fail_at=fail_at)
    if fail_at is not None:
        with pytest.raises(SimulatedKill):
            fit(task, 200, None, None, cfg, tmp_path)
        task.fail_at = None
    return fit(task, 200, None, None, cfg, tmp_path)


def test_official_schedule_follows_the_official_scheduler_and_resumes_in_place(tmp_path):
    total = 260
    lrs = [r["lr"] for r in official_run(tmp_path / "ref", total).train_log]
    official = OfficialScheduler(max_epoch=200, iters_per_epoch=50, min_lr=8e-5, init_lr=1e-3, warmup_steps=200,
                                 warmup_start_lr=1e-5)
    expected = [official.lr(*divmod(step, 50)) for step in range(total)]
    assert lrs == pytest.approx(expected, rel=1e-12, abs=0)
    # what that means: the warm-up restarts every 50-step epoch and climbs 49/200 of the way, about a quarter ...
    assert lrs[0] == lrs[50] == lrs[150] == pytest.approx(1e-5)
    assert max(lrs[:200]) == lrs[49] == pytest.approx(1e-5 + (1e-3 - 1e-5) * 49 / 200)
    # ... then the cosine starts near the peak, over 10,000 steps towards the 8e-5 floor
    assert lrs[200] == pytest.approx(8e-5 + (1e-3 - 8e-5) * 0.5 * (1 + math.cos(math.pi * 200 / 10_000)))
    # killed at step 123 (checkpoint at 119), the resumed run uses the same learning rates at the same steps
    resumed = official_run(tmp_path / "resumed", total, fail_at=123)
    assert [r["lr"] for r in resumed.train_log] == lrs


def test_schedule_is_part_of_the_resume_key(tmp_path):
    x, y, _, _ = data()
    cfg = TrainConfig(lr=1e-3, batch_size=16, max_steps=4)
    fit(TinyTask(make_mlp(seed=0), x, y), 200, None, None, cfg, tmp_path)
    key = read_state(tmp_path / "checkpoint" / "state.safetensors")["run"]
    assert "schedule" not in key and "min_lr" not in key  # at their defaults: keys of older checkpoints
    cfg.schedule = "official"
    with pytest.raises(LlmrecError, match="written with schedule=None, now 'official'"):
        fit(TinyTask(make_mlp(seed=0), x, y), 200, None, None, cfg, tmp_path)
    with pytest.raises(LlmrecError, match="TrainConfig.min_lr"):
        TrainConfig(lr=1e-4, max_steps=1, min_lr=8e-5 * 2).validate()


def test_budget_is_the_smallest_of_steps_epochs_samples(tmp_path):
    x, y, _, _ = data()
    for kw, steps in [({"epochs": 1.5}, 18), ({"max_samples": 100, "epochs": 3}, 6), ({"max_steps": 5}, 5)]:
        res = fit(TinyTask(make_mlp(seed=0), x, y), 200, None, None,
                  TrainConfig(batch_size=8, grad_accum_steps=2, **kw), tmp_path / str(steps))
        assert res.steps == steps and res.samples_seen == steps * 16


def test_predict_rows_order_and_bad_input(tmp_path):
    x, y, _, _ = data()
    module = make_mlp(seed=0, dropout=0.5)
    module.train()
    assert predict_rows(RowIdTask(module, x, y), 23, 5).tolist() == list(range(23))
    s1, s2 = (predict_rows(TinyTask(module, x, y), 23, bs) for bs in (5, 23))
    assert np.allclose(s1, s2, rtol=0, atol=1e-12) and module.training  # eval mode inside, training mode restored
    with pytest.raises(LlmrecError, match="TrainConfig.batch_size"):
        fit(TinyTask(module, x, y), 200, None, None, TrainConfig(batch_size=0, max_steps=1), tmp_path)
    with pytest.raises(LlmrecError, match="at least one of max_steps, epochs, max_samples"):
        fit(TinyTask(module, x, y), 200, None, None, TrainConfig(), tmp_path)
    with pytest.raises(LlmrecError, match="eval_task must share"):
        fit(TinyTask(module, x, y), 200, 10, lambda s: {}, TrainConfig(max_steps=1), tmp_path,
            eval_task=TinyTask(make_mlp(seed=0), x, y))
    with pytest.raises(LlmrecError, match="no selection metric 'auc'"):
        fit(TinyTask(module, x, y), 200, 10, lambda s: {"ndcg": 0.1}, TrainConfig(max_steps=1), tmp_path / "m")


def launch_two(*args) -> subprocess.CompletedProcess:
    """ddp_train_script.py ARGS in 2 CPU processes (gloo)."""
    return launch_cpu(HERE / "ddp_train_script.py", *args)


def close(a: dict, b: dict) -> bool:
    """Two {name: flat values} agree up to float summation order."""
    return a.keys() == b.keys() and all(np.allclose(a[k], b[k], rtol=1e-9, atol=1e-12) for k in a)


@pytest.mark.timeout(120)
def test_two_processes_gather_eval_rows_exactly_and_match_one_process(tmp_path):
    sys.path.insert(0, str(HERE))
    from ddp_train_script import N_EVAL, run

    proc = launch_two(tmp_path / "ddp", tmp_path / "result", 8)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = results(tmp_path / "result")
    single = run(str(tmp_path / "single"), 16)  # one process, same global batch of 16 rows

    assert [r["num_processes"] for r in ranks] == [2, 2] and single["num_processes"] == 1
    for r in ranks:
        assert r["row_ids"] == list(range(N_EVAL))  # every eval row once, in order, on every process
        assert len(r["eval_scores"]) == 3 and all(len(s) == N_EVAL for s in r["eval_scores"])
    assert ranks[0]["history"] == ranks[1]["history"] and ranks[0]["params"] == ranks[1]["params"]
    # before any step the model is the same: scores and metrics are exactly the single-process ones
    assert ranks[0]["eval_scores"][0] == single["eval_scores"][0]
    assert ranks[0]["history"][0] == single["history"][0]
    # one scheduler step per optimizer step, whatever the number of processes
    assert ranks[0]["lrs"] == ranks[1]["lrs"] == single["lrs"] == pytest.approx(
        [0, 0.025] + [0.05 * 0.5 * (1 + math.cos(math.pi * k / 4)) for k in range(4)])
    # after training on the same global batches (2 x 8 rows vs 16): equal up to float summation order
    for h2, h1 in zip(ranks[0]["history"][1:], single["history"][1:], strict=True):
        assert h2["step"] == h1["step"] and h2["auc"] == pytest.approx(h1["auc"], abs=1e-9)
        assert h2["train_loss"] == pytest.approx(h1["train_loss"], rel=1e-6)  # logged in float32
    assert close(ranks[0]["params"], single["params"])


@pytest.mark.timeout(300)
def test_fsdp_shards_and_trains_as_one_process_and_resumes_across_layouts(tmp_path):
    sys.path.insert(0, str(HERE))
    from ddp_train_script import N_EVAL, run

    single = run(str(tmp_path / "single"), 16, "accum")  # 2 x 16-row micro-batches, clipped, like 2 x 2 x 8
    proc = launch_two(tmp_path / "fsdp", tmp_path / "fsdp", 8, "fsdp")
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = results(tmp_path / "fsdp")
    # every parameter is split over the processes (the 1-row output layer: 1 row and none), after fit too
    assert all(a and b for a, b in zip(ranks[0]["shards"], ranks[1]["shards"], strict=True))
    assert [a[0] + b[0] for a, b in zip(ranks[0]["shards"], ranks[1]["shards"])] == [a[1] for a in ranks[0]["shards"]]
    assert ranks[0]["shards"][0] == [64, 128]
    for r in ranks:
        # every eval row once, in order, though the shards take 7 and 6 batches of 3 (a padded batch)
        assert r["row_ids"] == r["row_ids_after"] == list(range(N_EVAL))
    assert ranks[0]["history"] == ranks[1]["history"] and ranks[0]["scores_after"] == ranks[1]["scores_after"]
    assert ranks[0]["lrs"] == single["lrs"]
    for h2, h1 in zip(ranks[0]["history"][1:], single["history"][1:], strict=True):
        assert h2["step"] == h1["step"] and h2["auc"] == pytest.approx(h1["auc"], abs=1e-9)
        assert h2["train_loss"] == pytest.approx(h1["train_loss"], rel=1e-6)
    assert close(ranks[0]["last"], single["last"])  # checkpoints: full tensors
    # the best state (step 0's, the untrained one) is in best/ and back in the sharded module
    assert [h["is_best"] for h in single["history"]] == [True, False, False]
    assert close(ranks[0]["best"], single["best"])
    assert close(ranks[0]["params"], single["params"]) and close(ranks[0]["params"], single["best"])
    assert not close({k.split(".", 1)[1]: v for k, v in single["last"].items()}, single["best"])
    assert np.allclose(ranks[0]["scores_after"], single["scores_after"], rtol=1e-9, atol=1e-12)

    # killed in step 5 (after the step-3 checkpoint) under FSDP, resumed unsharded; and the other way round
    for first, then in (("fsdp", "accum"), ("accum", "fsdp")):
        out = tmp_path / f"{first}-{then}"
        proc = launch_two(out, tmp_path / "killed", 8, first, 9)
        assert proc.returncode != 0 and not list(tmp_path.glob("killed.*")), proc.stderr[-3000:]
        assert read_state(out / "checkpoint" / "state.safetensors")["step"] == 3
        proc = launch_two(out, tmp_path / then, 8, then)
        assert proc.returncode == 0, proc.stderr[-3000:]
        resumed = results(tmp_path / then)
        assert [h["step"] for h in resumed[0]["history"]] == [0, 3, 6]
        assert close(resumed[0]["last"], single["last"]), (first, then)
        assert close(resumed[0]["params"], single["params"]), (first, then)


class GroupedTask(TinyTask):
    """The MLP's first layer at its own learning rate."""

    def __init__(self, module, x, y, first_lr, **kw):
        super().__init__(module, x, y, **kw)
        self.first_lr = first_lr

    def param_groups(self):
        return [{"params": list(self.module[0].parameters()), "lr": self.first_lr}]


def test_task_param_groups_train_at_their_own_lr_and_resume(tmp_path):
    x, y, xe, ye = data()
    module = make_mlp(seed=0)
    before = params(module)
    one_step = TrainConfig(lr=1e-3, weight_decay=0.0, batch_size=16, max_steps=1, warmup_steps=0)
    fit(GroupedTask(module, x, y, first_lr=0.1), 200, None, None, one_step, tmp_path / "one")
    moved = [(a - b).abs().max().item() for a, b in zip(params(module), before)]
    # Adam's first step moves every coordinate with a gradient by its group's learning rate
    assert moved == pytest.approx([0.1, 0.1, 1e-3, 1e-3], rel=1e-3)

    cfg = TrainConfig(lr=0.01, batch_size=8, max_steps=12, eval_every=4, patience=None, warmup_steps=2)
    evaluate = lambda s: {"auc": auc(ye.numpy(), s)}  # noqa: E731

    def run(out, fail_at=None, first_lr=0.05):
        module = make_mlp(seed=0, dropout=0.3)
        task = GroupedTask(module, x, y, first_lr=first_lr, fail_at=fail_at)
        if fail_at is not None:
            with pytest.raises(SimulatedKill):
                fit(task, 200, 60, evaluate, cfg, out, eval_task=TinyTask(module, xe, ye))
            task.fail_at = None
        return module, fit(task, 200, 60, evaluate, cfg, out, eval_task=TinyTask(module, xe, ye))

    ref_module, ref = run(tmp_path / "ref")
    res_module, res = run(tmp_path / "resumed", fail_at=7)  # killed in step 7, after the checkpoint at step 4
    assert same(params(res_module), params(ref_module)) and len(res.step_seconds) == 8
    assert [r["lr"] for r in res.train_log] == [r["lr"] for r in ref.train_log]  # the default group's schedule
    with pytest.raises(LlmrecError, match="param_group_lrs"):  # another group lr is another run
        run(tmp_path / "ref", first_lr=0.02)


def test_checkpoint_writes_shared_and_viewed_tensors_and_copies_only_those(tmp_path, monkeypatch):
    from llmrec import checkpoint

    emb = torch.nn.Embedding(5, 3)
    head = torch.nn.Linear(3, 5, bias=False)
    head.weight = emb.weight  # tied: one storage under two names
    w = torch.randn(4, 3)
    p = torch.nn.Parameter(torch.randn(6))
    opt = torch.optim.AdamW([p])
    p.grad = torch.ones(6)
    opt.step()
    copied = []
    clone = torch.Tensor.clone
    monkeypatch.setattr(torch.Tensor, "clone", lambda t, *a, **k: copied.append(tuple(t.shape)) or clone(t, *a, **k))
    checkpoint.save_training_state(tmp_path / "s.safetensors", {"model": {
        "emb": emb.weight, "head": head.weight, "w": w, "row": w[1], "a": torch.zeros(0), "b": torch.zeros(0, 3)}},
        opt, {"step": 1})
    monkeypatch.undo()
    assert sorted(copied) == [(3,), (5, 3)]  # the tied second name and the view; the rest written in place
    fresh = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(6))])
    groups, state = checkpoint.load_training_state(tmp_path / "s.safetensors", fresh)
    model = groups["model"]
    assert torch.equal(model["emb"], emb.weight) and torch.equal(model["head"], emb.weight)
    assert torch.equal(model["w"], w) and torch.equal(model["row"], w[1]) and model["b"].shape == (0, 3)
    assert torch.equal(fresh.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    assert state == {"step": 1}
