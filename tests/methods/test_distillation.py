"""`stage*.teacher_weight` (ours): BinLLM and CoLLM train on targets mixed from the label and their own
collaborative model's Platt-calibrated click probability. The planted-signal test of a method that learns from the
teacher alone is in test_planted_signal.py (case binllm-io-distilled)."""
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from llmrec import experiment
from llmrec.collab import trainer
from llmrec.errors import LlmrecError
from llmrec.methods import click
from llmrec.methods.classic import recipe as classic
from llmrec.runs import open_run
from test_click_methods import TINY


def test_platt_calibration_matches_scikit_learn():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 8, size=4000)  # BinMF-like: wide, overconfident logits
    labels = (rng.random(4000) < 1 / (1 + np.exp(-(0.2 * logits - 0.4)))).astype(float)
    a, b = click.platt_calibrate(logits, labels)
    ref = LogisticRegression(C=1e9, tol=1e-10, max_iter=1000).fit(logits[:, None], labels)
    assert a == pytest.approx(ref.coef_[0, 0], rel=1e-3)
    assert b == pytest.approx(ref.intercept_[0], abs=1e-3)
    assert a == pytest.approx(0.2, abs=0.03) and b == pytest.approx(-0.4, abs=0.15)  # recovers the truth


def test_targets_mix_label_and_calibrated_teacher():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 3, size=500)
    labels = (logits + rng.normal(0, 2, size=500) > 0).astype(float)
    a, b = click.platt_calibrate(logits, labels)
    p = 1 / (1 + np.exp(-(a * logits + b)))
    np.testing.assert_allclose(click.distillation_targets(labels, logits, 0.0), labels, atol=1e-6)
    np.testing.assert_allclose(click.distillation_targets(labels, logits, 1.0), p, atol=1e-6)
    np.testing.assert_allclose(click.distillation_targets(labels, logits, 0.25), 0.75 * labels + 0.25 * p, atol=1e-6)
    assert p.mean() == pytest.approx(labels.mean(), abs=1e-3)  # calibrated: the mean matches the click rate


def capture_targets(monkeypatch) -> list:
    """The targets of every training task, in the order the stages build them (None: the labels)."""
    seen, real = [], click.ClickTask

    class Recording(real):
        def __init__(self, *args, targets=None, **kwargs):
            super().__init__(*args, targets=targets, **kwargs)
            if not kwargs.get("sort_by_length"):  # evaluation tables are sorted; training rows are not
                seen.append(None if targets is None else self.labels.copy())

    monkeypatch.setattr(click, "ClickTask", Recording)
    return seen


@pytest.mark.parametrize("method,model", [("binllm", "encoder"), ("collm", "collab")])
def test_stage2_trains_on_its_own_collaborative_models_probabilities(method, model, tiny_split, tmp_path,
                                                                     monkeypatch):
    seen = capture_targets(monkeypatch)
    out = tmp_path / method
    experiment.train(experiment.make_config(method, None, TINY + ["stage2.teacher_weight=0.5"]), out,
                     split=tiny_split)
    assert len(seen) == 2 and seen[0] is None  # stage 1 keeps the labels (its teacher_weight is 0)
    teacher = trainer.predict(classic.load_model(open_run(out), tiny_split, model), tiny_split.train)
    labels = tiny_split.train["label"].to_numpy()
    want = click.distillation_targets(labels, teacher, 0.5)
    np.testing.assert_allclose(seen[1], want, atol=1e-6)
    assert len(np.unique(np.round(want, 4))) > 10  # graded targets, not the labels again


@pytest.mark.parametrize("method", ["tallrec", "icl"])
def test_methods_without_a_collaborative_model_refuse_a_teacher(method):
    with pytest.raises(LlmrecError, match=f"stage1.teacher_weight=0.5: {method} has no collaborative model"):
        experiment.make_config(method, None, ["stage1.teacher_weight=0.5"])


def test_teacher_weight_is_a_share():
    with pytest.raises(LlmrecError, match=r"stage2.teacher_weight: must be in \[0, 1\], got 1.5"):
        experiment.make_config("binllm", None, ["stage2.teacher_weight=1.5"])
