import pytest
import torch

from llmrec.config import ExperimentConfig, load_config, parse_overrides, save_config
from llmrec.errors import LlmrecError
from llmrec.runs import Run, open_run


def test_overrides_are_typed_and_nested():
    cfg = load_config(None, ["llm.backbone=tiny", "stage1.lr=3e-4", "data.cuts=[0.7, 0.85]",
                             "collm.tune_collab=true", "eval.test_rows=100", "llm.lora.r=4"])
    assert cfg.llm.backbone == "tiny" and cfg.stage1.lr == pytest.approx(3e-4)
    assert cfg.data.cuts == [0.7, 0.85] and cfg.collm.tune_collab is True
    assert cfg.eval.test_rows == 100 and cfg.llm.lora.r == 4
    assert parse_overrides(["a.b.c=1"]) == {"a": {"b": {"c": 1}}}


@pytest.mark.parametrize("override, message", [
    ("llm.bogus=1", "unknown field"), ("stage1.lr=abc", "expected float"), ("eval.test_rows=1.5", "integer"),
    ("collm.tune_collab=maybe", "true/false"), ("novalue", "section.field=value"),
    ("collab.valid_part=test", "expected one of valid_small, valid")])
def test_bad_overrides_give_one_clear_line(override, message):
    with pytest.raises(LlmrecError, match=message):
        load_config(None, [override])


def test_overrides_are_checked_together_and_a_problem_is_blamed_on_its_override():
    """A cross-field check sees every override: the no-LLM control (encoder=mean) needs lora=false, which may come
    after it; what is still wrong at the end is blamed on the override that made it so."""
    both = ["cllm4rec.lora=true", "cllm4rec.encoder=mean", "cllm4rec.lora=false"]
    cfg = load_config(None, both)
    assert cfg.cllm4rec.encoder == "mean" and cfg.cllm4rec.lora is False
    from llmrec.experiment import make_config  # the README's control command: the variant over the shipped config
    control = make_config("cllm4rec-no-llm", "cllm4rec-ml100k").cllm4rec
    assert (control.encoder, control.lora) == ("mean", False)
    with pytest.raises(LlmrecError, match=r"^override 'cllm4rec.encoder=mean': .*lora"):
        load_config(None, both[:2] + ["stage1.lr=3e-4"])
    with pytest.raises(LlmrecError, match=r"^override 'collab.epochs=-5': collab.epochs: must be > 0"):
        load_config(None, both + ["collab.epochs=-5", "stage1.lr=3e-4"])


def test_a_mapping_value_is_replaced_whole_and_a_dotted_override_edits_one_key(tmp_path):
    """`lcrec.tasks` is a free-form mapping with defaults (the paper's six tasks): a file that names three tasks
    trains those three (merged into the defaults it trained 80k paper prompts beside 2k windows); a dotted
    override edits one task of whatever the mix is; a mapping override replaces the mix."""
    (tmp_path / "c.yaml").write_text("lcrec:\n  tasks: {seqrec_all_positions: 1, item2index: 0.2}\n"
                                    "  rqvae: {epochs: 200}\n")
    assert load_config(tmp_path / "c.yaml").lcrec.tasks == {"seqrec_all_positions": 1, "item2index": 0.2}
    cfg = load_config(tmp_path / "c.yaml", ["lcrec.tasks.item2index=0.5", "lcrec.rqvae.levels=3"])
    assert cfg.lcrec.tasks == {"seqrec_all_positions": 1, "item2index": 0.5}
    assert (cfg.lcrec.rqvae.epochs, cfg.lcrec.rqvae.levels, cfg.lcrec.rqvae.codebook_size) == (200, 3, 256)
    assert load_config(tmp_path / "c.yaml", ["lcrec.tasks={seqrec: 1}"]).lcrec.tasks == {"seqrec": 1}
    # a mapping for a nested section merges into it: the file's rqvae.epochs stays
    rq = load_config(tmp_path / "c.yaml", ["lcrec.rqvae={levels: 2, e_dim: 8}"]).lcrec.rqvae
    assert (rq.epochs, rq.levels, rq.e_dim) == (200, 2, 8)
    paper = load_config(None, ["lcrec.tasks.fusionseqrec=0"]).lcrec.tasks
    assert paper["fusionseqrec"] == 0 and paper["seqrec"] == paper["index2item"] == 1.0
    from llmrec.experiment import make_config
    assert set(make_config("lcrec", "lcrec-ml100k").lcrec.tasks) == {"seqrec_all_positions", "item2index",
                                                                    "index2item"}


def test_yaml_round_trip_and_file_errors(tmp_path):
    cfg = load_config(None, ["method=tallrec", "stage2.max_samples=64"])
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == cfg
    (tmp_path / "bad.yaml").write_text("llm: [unclosed")
    with pytest.raises(LlmrecError, match="not valid YAML"):
        load_config(tmp_path / "bad.yaml")
    with pytest.raises(LlmrecError, match="no such config"):
        load_config(tmp_path / "missing.yaml")


def test_run_directory_resume_and_refuse_other_config(tmp_path):
    cfg = ExperimentConfig(method="mf")
    run = Run.create_or_resume(tmp_path / "r", cfg)
    run.save_tensors("w.safetensors", {"a": torch.arange(3.0)})
    assert not run.finished
    again = Run.create_or_resume(tmp_path / "r", cfg)  # same config: reopened, files kept
    assert torch.equal(again.load_tensors("w.safetensors")["a"], torch.arange(3.0))
    with pytest.raises(LlmrecError, match="different config"):
        Run.create_or_resume(tmp_path / "r", ExperimentConfig(method="binllm"))
    again.finish({"auc": 0.7})
    assert open_run(tmp_path / "r").metrics == {"auc": 0.7}
    with pytest.raises(LlmrecError, match="not a run directory"):
        open_run(tmp_path / "nothing")
    assert not list((tmp_path / "r").glob("*.tmp"))


def test_partial_section_keeps_the_parents_defaults():
    cfg = load_config(None, ["stage2.max_samples=64"])
    assert cfg.stage2.batch_size == 4 and cfg.stage2.lr == pytest.approx(1e-4)  # not StageConfig's own defaults
    assert cfg.stage2.max_samples == 64
