"""The shared early-stopping epoch loop (llmrec.collab.loop): selection, patience, evaluation points, resume."""
import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from llmrec.collab.loop import run_epochs
from llmrec.errors import LlmrecError


class Killed(Exception):
    pass


def _scripted(values):
    """A model whose weight is set to the epoch number, and an `evaluate` that reads `values` in turn."""
    model = nn.Linear(1, 1, bias=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    evaluated = []

    def train_epoch(epoch):
        with torch.no_grad():
            model.weight.fill_(float(epoch))
        return {"loss": 1.0 / epoch}

    def evaluate():
        evaluated.append(int(model.weight.item()))
        return {"score": values[len(evaluated) - 1]}

    return model, optimizer, train_epoch, evaluate, evaluated


def test_best_epoch_is_the_first_strict_gain_and_patience_stops():
    model, opt, train_epoch, evaluate, evaluated = _scripted([0.1, 0.5, 0.4, 0.5, 0.3, 0.9])
    result = run_epochs(model, opt, train_epoch, evaluate, epochs=6, metric="score", patience=3, progress=False)
    # epoch 4 only ties epoch 2's 0.5: no gain; epochs 3, 4, 5 without gain exhaust patience 3 before epoch 6
    assert result.best_epoch == 2 and result.best_value == 0.5 and result.stopped_early
    assert [h["epoch"] for h in result.history] == [1, 2, 3, 4, 5] and evaluated == [1, 2, 3, 4, 5]
    assert model.weight.item() == 2.0 and not model.training  # the best weights, in eval mode
    assert result.best_metrics == {"score": 0.5} and result.history[1]["valid_score"] == 0.5


def test_evaluation_every_n_epochs_and_at_the_last_one_lower_is_better():
    model, opt, train_epoch, evaluate, evaluated = _scripted([0.3, 0.2, 0.25])
    result = run_epochs(model, opt, train_epoch, evaluate, epochs=5, metric="score", eval_every=2,
                        higher_is_better=False, samples_per_epoch=10, progress=False)
    assert evaluated == [2, 4, 5] and result.best_epoch == 4 and not result.stopped_early
    assert ["valid_score" in h for h in result.history] == [False, True, False, True, True]
    assert [h["samples"] for h in result.history] == [10, 20, 30, 40, 50]
    assert model.weight.item() == 4.0


def test_no_patience_runs_every_epoch():
    model, opt, train_epoch, evaluate, _ = _scripted([0.5, 0.4, 0.3, 0.2])
    result = run_epochs(model, opt, train_epoch, evaluate, epochs=4, metric="score", patience=None, progress=False)
    assert len(result.history) == 4 and result.best_epoch == 1 and not result.stopped_early


def _noisy_training(seed=0):
    """Dropout (torch RNG), a numpy generator carried as extra state, Adam and an lr schedule: everything a
    resumed run must restore to continue like an uninterrupted one."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0 / (1 + s))
    data = torch.as_tensor(np.random.default_rng(1).normal(size=(64, 4)), dtype=torch.float32)
    target = data.sum(1, keepdim=True)
    rng = np.random.default_rng(seed)

    def train_epoch(epoch):
        order = rng.permutation(len(data))
        total = 0.0
        for start in range(0, len(data), 16):
            idx = torch.as_tensor(order[start:start + 16])
            loss = ((model(data[idx]) - target[idx]) ** 2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += loss.item()
        return {"loss": total}

    def evaluate():
        with torch.no_grad():
            return {"mse": ((model(data) - target) ** 2).mean().item()}

    def restore(extra):
        rng.bit_generator.state = extra["rng"]

    return model, optimizer, train_epoch, evaluate, dict(
        scheduler=scheduler, extra_state=lambda: {"rng": rng.bit_generator.state}, load_extra_state=restore,
        epochs=8, metric="mse", higher_is_better=False, eval_every=2, patience=3, seed=seed, progress=False,
        fingerprint={"lr": 0.05})


def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path):
    model, opt, train_epoch, evaluate, kw = _noisy_training()
    whole = run_epochs(model, opt, train_epoch, evaluate, **kw)

    def kill(record):
        if record["epoch"] == 3:
            raise Killed

    ckpt = tmp_path / "last.safetensors"
    model, opt, train_epoch, evaluate, kw = _noisy_training()
    with pytest.raises(Killed):
        run_epochs(model, opt, train_epoch, evaluate, checkpoint=ckpt, on_epoch_end=kill, **kw)
    seen = []
    model, opt, train_epoch, evaluate, kw = _noisy_training()
    torch.manual_seed(123)  # the resumed process's RNG differs: the checkpoint must restore it
    resumed = run_epochs(model, opt, train_epoch, evaluate, checkpoint=ckpt,
                         on_epoch_end=lambda r: seen.append(r["epoch"]), **kw)
    assert seen == list(range(4, len(whole.history) + 1))
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in whole.history]
    assert resumed.best_epoch == whole.best_epoch and resumed.best_value == whole.best_value
    for key, value in whole.best_state.items():
        assert torch.equal(resumed.best_state[key], value), key

    # a finished run called again trains nothing and returns the same selection
    model, opt, train_epoch, evaluate, kw = _noisy_training()
    again = run_epochs(model, opt, lambda e: pytest.fail("trained again"), evaluate, checkpoint=ckpt, **kw)
    assert again.best_epoch == whole.best_epoch
    for key, value in whole.best_state.items():
        assert torch.equal(model.state_dict()[key], value), key


def test_checkpoint_of_other_settings_or_format_is_refused(tmp_path):
    ckpt = tmp_path / "last.safetensors"
    model, opt, train_epoch, evaluate, kw = _noisy_training()
    run_epochs(model, opt, train_epoch, evaluate, checkpoint=ckpt, **{**kw, "epochs": 1})
    model, opt, train_epoch, evaluate, kw = _noisy_training()
    with pytest.raises(LlmrecError, match="different training.*lr"):
        run_epochs(model, opt, train_epoch, evaluate, checkpoint=ckpt, **{**kw, "fingerprint": {"lr": 0.1}})
    save_file({"x": torch.zeros(1)}, str(ckpt), metadata={"trainer": "{}", "optimizer": "{}"})  # format 1
    with pytest.raises(LlmrecError, match="format 1"):
        run_epochs(model, opt, train_epoch, evaluate, checkpoint=ckpt, **kw)


def test_under_a_launch_every_process_ends_with_the_main_process_weights(tmp_path):
    """Two processes train copies that differ; only the main one writes the checkpoint, and both end with its
    best weights (what the main process saves for the run)."""
    from pathlib import Path

    from launch import launch_cpu, results

    proc = launch_cpu(Path(__file__).parent / "epochs_two_processes.py", tmp_path / "last.safetensors",
                      tmp_path / "out")
    assert proc.returncode == 0, proc.stderr[-3000:]
    main, other = results(tmp_path / "out")
    assert main["before"] != other["before"]  # the copies started apart
    assert main["writes"] == 3 and other["writes"] == 0  # one checkpoint per epoch, by the main process
    assert other["after"] == main["after"] and other["best_state"] == main["best_state"]
    assert (tmp_path / "last.safetensors").is_file()
