"""LC-Rec's settings, without torch: `LCRecConfig` (the run) and `RQVAEConfig` (its indexer), and the names
their fields may take. docs/methods/lcrec.md describes the recipe they drive; `llmrec.methods.lcrec.recipe` runs it.

The backbone, its dtype and the seed are not here: LC-Rec reads `llm.backbone`, `llm.dtype`,
`llm.gradient_checkpointing` and `seed` of the experiment config, as every method does (docs/architecture.md).
"""
from __future__ import annotations

import typing
from dataclasses import dataclass, field

from llmrec.errors import LlmrecError
from llmrec.methods.lcrec.templates import TEMPLATES, WRAPPERS  # plain strings (no torch)

# The choices of the fields below (typing.Literal: the config reader names them when a value is not one of them)
IndexKind = typing.Literal["learned", "random", "file"]
Finetune = typing.Literal["lora", "full"]
EmbeddingMode = typing.Literal["new_tokens", "full"]
Encoder = typing.Literal["minilm", "backbone"]
"""Item text encoders for the RQ-VAE (llmrec.methods.lcrec.embeddings)."""
NewRowInit = typing.Literal["normal", "matched", "mean"]
"""Initialisations of the added index tokens' rows (llmrec.methods.lcrec.vocab.add_index_tokens)."""
NewTokenHead = typing.Literal["tied", "untied"]
"""Output rows of the added index tokens (llmrec.methods.lcrec.vocab.untie_new_rows)."""
Template = typing.Literal["alpaca", "compact"]
"""Prompt wrappers (llmrec.methods.lcrec.templates.WRAPPERS)."""
EvalPrompt = typing.Literal["seqrec", "sequence"]
ItemLoss = typing.Literal["vocab", "trie"]
ValidMetric = typing.Literal["ndcg@10", "nll"]
"""What the validation selects on (llmrec.methods.lcrec.recipe)."""
ItemPrior = typing.Literal["none", "popularity"]
"""Priors over the item trie (llmrec.methods.lcrec.prior)."""
INDEX_KINDS, FINETUNE, EMBEDDING_MODES, ENCODERS, NEW_ROW_INITS, NEW_TOKEN_HEADS = (
    typing.get_args(t) for t in (IndexKind, Finetune, EmbeddingMode, Encoder, NewRowInit, NewTokenHead))
ITEM_LOSSES = typing.get_args(ItemLoss)
"""Index-token normalisations: the config's `item_loss`, the beam search's `normalize`."""
ITEM_PRIORS, VALID_METRICS = typing.get_args(ItemPrior), typing.get_args(ValidMetric)
SEQUENCE_TASK = "seqrec_all_positions"
TASKS = tuple(TEMPLATES) + (SEQUENCE_TASK,)
PROMPT_KINDS = typing.get_args(EvalPrompt)
"""Evaluation prompts: the paper's seqrec template 0, or ours, the all-positions prompt continued."""


@dataclass
class RQVAEConfig:
    """RQ-VAE architecture, training and index-generation settings (defaults: the official run script)."""

    levels: int = 4
    """Number of residual quantisation levels (tokens per item)."""
    codebook_size: int = 256
    """Codes per level (capped at the number of items)."""
    e_dim: int = 32
    """Dimension of the latent and of every code vector."""
    hidden: tuple[int, ...] | None = None
    """Encoder hidden widths (decoder mirrored); None: the size rule in the module docstring."""
    beta: float = 0.25
    """Weight of the commitment term inside each level's quantisation loss."""
    quant_loss_weight: float = 1.0
    """Weight of the mean quantisation loss against the reconstruction MSE."""
    kmeans_init: bool = True
    """Initialise each codebook by k-means on its level's residuals of the first batch (else uniform +-1/K)."""
    kmeans_iters: int = 100
    """Maximum k-means iterations (scikit-learn KMeans, one initialisation, seeded)."""
    sinkhorn: bool = True
    """Uniform semantic mapping: Sinkhorn-Knopp assignments on the last level during training."""
    sk_epsilon: float = 0.003
    """Sinkhorn entropy regularisation epsilon (distances rescaled to [-1, 1] first)."""
    sk_iters: int = 50
    """Sinkhorn-Knopp iterations."""
    collision_rounds: int = 20
    """Rounds of Sinkhorn re-assignment of colliding groups at index generation (0: none)."""
    epochs: int = 1000
    """Training epochs (a CPU budget; the official run: 10000, the paper's checkpoint: epoch 5000). On ml-100k
    with MiniLM the collision rate stops changing after ~100 epochs."""
    batch_size: int = 1024
    """Items per training batch."""
    lr: float = 1e-3
    """AdamW learning rate."""
    weight_decay: float = 1e-4
    """AdamW weight decay."""
    warmup_epochs: int = 50
    """Linear warm-up length in epochs (then linear decay to 0)."""
    max_grad_norm: float | None = 1.0
    """Gradient-norm clipping (official: 1.0); None disables."""
    eval_every: int = 50
    """Measure the collision rate every this many epochs and keep the state with the lowest one."""
    seed: int = 2024
    """Seeds initialisation, batch order and k-means (official: 2024)."""

    def validate(self) -> None:
        for name in ("levels", "codebook_size", "e_dim", "epochs", "batch_size", "eval_every", "sk_iters",
                     "kmeans_iters"):
            if getattr(self, name) < 1:
                raise LlmrecError(f"RQVAEConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.collision_rounds < 0 or self.warmup_epochs < 0:
            raise LlmrecError("RQVAEConfig.collision_rounds and warmup_epochs must be >= 0")
        if not self.sk_epsilon > 0:
            raise LlmrecError(f"RQVAEConfig.sk_epsilon must be > 0, got {self.sk_epsilon}")
        if self.hidden is not None and any(int(h) < 1 for h in self.hidden):
            raise LlmrecError(f"RQVAEConfig.hidden: widths must be >= 1, got {self.hidden}")




@dataclass
class LCRecConfig:
    """One LC-Rec run. Defaults: a small CPU budget for ml-100k with SmolLM2-135M: 80 LoRA steps of 8 samples
    (640 of the ~80k alignment samples), validation NDCG@10 on 32 users at steps 40 and 80, test on every user.
    Measured on the shared two-core development machine (about 5 processes competing, one torch thread):
    18 training tokens/s (~70 s per step of ~1,500 tokens) and 4.1 s of beam search per user; an idle machine
    runs the naive loop at ~120 tokens/s (BENCHMARKS.md), i.e. ~12 s per step, so the default run takes ~16 min
    of training plus ~4 min of evaluation there, after the one-off MiniLM embedding and RQ-VAE training
    (cached). It is a pipeline check, not a reproduction: paper-scale runs set max_steps=None, epochs=4,
    valid_users/test_users=None and the official tuning recipe (finetune="full", lr=5e-5, batch 128)."""

    device: str = "auto"
    """Torch device for the backbone (auto: CUDA when available)."""
    index: IndexKind = "learned"
    """Item indices: learned (RQ-VAE, the method), random (ablation: distinct random codes), file (index_file)."""
    index_file: str | None = None
    """Index JSON {item_id: [tokens]} keyed by internal item id, for index='file'."""
    text_encoder: Encoder = "minilm"
    """Item text embeddings for the RQ-VAE: minilm (all-MiniLM-L6-v2 wheel) or backbone (the paper: the LLM)."""
    sinkhorn: bool = True
    """Uniform semantic mapping (ablation switch): Sinkhorn on the last level in RQ-VAE training and the
    Sinkhorn re-assignment rounds at index generation. False: plain argmin, then the deterministic resolution."""
    rqvae: RQVAEConfig = field(default_factory=RQVAEConfig)
    """RQ-VAE settings (levels, codebook size, epochs, ...); its `sinkhorn` is overridden by the field above."""
    tasks: dict = field(default_factory=lambda: {"seqrec": 1.0, "item2index": 1.0, "index2item": 1.0,
                                                 "fusionseqrec": 1.0, "itemsearch": 1.0, "preferenceobtain": 1.0})
    """Task -> sampling ratio (1 all samples, 0.5 half, 2 twice with fresh templates, 0 none); a task left out
    is 0. The default is the paper's mix. itemsearch and preferenceobtain need `user_text` and are skipped with a
    message without it. Ours: `seqrec_all_positions`, a window of the user's training sequence as the response
    with the loss on every item after the first (up to `max_history` next-item targets per sample, where a
    seqrec sample has one); ratio 1 = every window once. Paper: absent."""
    new_token_init: NewRowInit = "normal"
    """Rows of the added index tokens: normal (distinct random rows, N(0, initializer_range^2): what the official
    code got from its transformers), matched (ours: N(0, s^2) with s the existing rows' standard deviation, the
    scale of the vocabulary they join) or mean (transformers' current default: all rows one vector, a measured
    handicap kept for comparison)."""
    new_token_head: NewTokenHead = "tied"
    """Output rows of the added tokens: tied (the backbone's rule: on a tied backbone such as SmolLM2 the new
    input rows are the output rows) or untied (ours: the output head becomes the backbone's own copy, the new
    output rows start at 0, so every index token starts at logit 0, and they train at `new_token_head_lr`).
    Tied `matched` rows start the valid item at 28.5 nats over the ml-100k catalogue, against 7.4 for uniform."""
    new_token_head_lr: float | None = None
    """Ours: the peak learning rate of the new output rows (new_token_head=untied); None: `new_token_lr`. An
    Adam step moves a logit by up to lr x |h|_1 (550 to 750 for SmolLM2's last hidden state), so the output rows
    need far smaller steps than the input rows."""
    item_prior: ItemPrior = "none"
    """Ours (paper: none): popularity adds log P(child | node) of the training items' counts to each trie node's
    children's logits (`prior.py`), in the trie loss and the beam search. With the untied output rows at 0 the
    untrained model then ranks items as popularity does, and fine-tuning learns what the user's history adds to
    it. Needs item_loss=trie and new_token_head=untied."""
    user_text: str | None = None
    """LC-Rec `<name>.user.json` (LLM-written preferences and intentions), keyed by raw ids; None: none."""
    max_history: int = 20
    """History items in a prompt (the last ones; official 20); all-positions windows hold max_history + 1
    items, so each of their targets is read after at most as many items as an evaluation prompt shows."""
    template: Template = "alpaca"
    """Prompt wrapper of every sample and evaluation prompt: alpaca (the paper's "Below is an instruction ...
    ### Response:") or compact (ours: "<instruction>\\nResponse:", about 40 fewer tokens without loss)."""
    eval_prompt: EvalPrompt = "seqrec"
    """Prompt the next item is generated after: seqrec (the paper: seqrec template 0 with the history) or
    sequence (ours: the all-positions prompt with the history spelled, as `seqrec_all_positions` trains it; no
    EOS is scored after the index). sequence needs the seqrec_all_positions task."""
    item_loss: ItemLoss = "vocab"
    """How an index token is scored, in training and in the beam search: vocab (the paper: the softmax over the
    whole vocabulary; the search masks after it) or trie (ours: the softmax over the children the token's prefix
    has in the item trie, so the loss is the likelihood of the item among the catalogue, the quantity the
    constrained search ranks by, and no gradient goes to keeping index tokens apart from words; the search
    normalises the same way and scores no EOS). Other response tokens (titles, EOS) keep the full softmax."""
    teacher_weight: float = 0.0
    """Ours (paper: 0, the observed items alone): the share of a SASRec teacher in the targets of next-item index
    tokens. Each such token is trained on (1 - w) * its token + w * the teacher's distribution over the children
    of its prefix (`teacher.py`), SASRec trained first in the run as `sasrec-rank` would be (the `seqrank`
    section). One next-item target then carries the teacher's belief about every item, not one observed item.
    In [0, 1]; alignment tasks keep their tokens."""
    teacher_temperature: float = 1.0
    """Divides the teacher's scores before its softmax (teacher_weight > 0); above 1 flattens its targets."""
    exclude_seen: bool = True
    """Ours (paper: false): the beam search leaves the user's history items out, at test and validation, as
    sasrec-rank and popularity-rank do under the same config. The paper's numbers (seen items allowed) are
    reported beside, under paper_ keys. False: the paper's rule only."""
    max_length: int = 512
    """Token cap per training sample (longer prompts lose their start)."""
    finetune: Finetune = "lora"
    """lora (r/alpha below on every linear projection) or full (every weight trains; official LLaMA run)."""
    lora_r: int = 8
    """LoRA rank (official LoRA variant: 8)."""
    lora_alpha: int = 32
    """LoRA alpha (official: 32)."""
    lora_dropout: float = 0.05
    """LoRA dropout (official: 0.05)."""
    lora_targets: str | list = "all-linear"
    """LoRA target modules: 'all-linear' (every projection: q, k, v, o, gate, up, down on Llama) or names."""
    embeddings: EmbeddingMode = "new_tokens"
    """With LoRA: new_tokens (only the added tokens' input and output rows train, peft trainable_token_indices)
    or full (whole embedding and LM head train, peft modules_to_save; the official LoRA variant)."""
    lr: float = 1e-3
    """Peak AdamW learning rate (official full fine-tuning: 5e-5; LoRA on a small model learns faster at 1e-3)."""
    new_token_lr: float | None = None
    """Ours (paper: None, one learning rate for everything): the peak learning rate of the added tokens' rows
    (input and output side; LoRA with embeddings=new_tokens only, where the rows are their own parameters).
    Random rows need far larger steps than the adapters: 1e-2 against LoRA's 1e-3."""
    weight_decay: float = 0.01
    """AdamW weight decay (official: 0.01)."""
    warmup_ratio: float = 0.01
    """Warm-up share of the planned steps, then cosine decay (official: 0.01, cosine)."""
    batch_size: int = 8
    """Samples per micro-batch."""
    grad_accum_steps: int = 1
    """Micro-batches per optimizer step."""
    max_steps: int | None = 80
    """Optimizer steps (the CPU budget); None: run `epochs`."""
    epochs: float | None = None
    """Passes over all samples (official: 4); used when set (the smaller of it and max_steps)."""
    eval_every: int = 40
    """Evaluate validation NDCG@10 every this many steps (and at the end); the best state is kept."""
    patience: int | None = 5
    """Stop after this many evaluations without gain (None: never)."""
    valid_users: int | None = 32
    """Validation users for model selection: a fixed seeded subset (None: all; beam search is the cost)."""
    valid_metric: ValidMetric = "ndcg@10"
    """What model selection reads: ndcg@10 (the paper: the constrained beam search's NDCG@10, 1.1 s a user here)
    or nll (ours: the mean negative log-likelihood of each valid user's next item, teacher-forced, one forward
    per user, lower is better; a continuous measure, so a few hundred users rank states where the hit rate on
    100 users is mostly noise). The test is the beam search either way."""
    test_users: int | None = None
    """Test users: None, every user (the paper's protocol; 943 on ml-100k), or a fixed seeded subset of this
    many (a quicker, noisier check: 100 users give HR@10 a standard error of about 0.025)."""
    num_beams: int = 20
    """Beam width = items returned per user (official 20); ranks beyond it count as misses."""
    eval_batch_size: int = 4
    """Users per beam-search batch (each user expands to num_beams rows)."""

    def validate(self) -> None:
        def bad(name, why):
            raise LlmrecError(f"LCRecConfig.{name}: {why} (got {getattr(self, name)!r})")

        if self.index not in INDEX_KINDS:
            bad("index", f"expected one of {', '.join(INDEX_KINDS)}")
        if self.index == "file" and not self.index_file:
            bad("index_file", "index='file' needs a path")
        if self.text_encoder not in ENCODERS:
            bad("text_encoder", f"expected one of {', '.join(ENCODERS)}")
        if self.finetune not in FINETUNE:
            bad("finetune", f"expected one of {', '.join(FINETUNE)}")
        if self.new_token_init not in NEW_ROW_INITS:
            bad("new_token_init", f"expected one of {', '.join(NEW_ROW_INITS)}")
        if self.embeddings not in EMBEDDING_MODES:
            bad("embeddings", f"expected one of {', '.join(EMBEDDING_MODES)}")
        if not isinstance(self.tasks, dict) or any(t not in TASKS for t in self.tasks):
            bad("tasks", f"expected a dict of task -> ratio over {', '.join(TASKS)}")
        if any(float(v) < 0 for v in self.tasks.values()):
            bad("tasks", "ratios must be >= 0")
        if self.template not in WRAPPERS:
            bad("template", f"expected one of {', '.join(WRAPPERS)}")
        if self.item_loss not in ITEM_LOSSES:
            bad("item_loss", f"expected one of {', '.join(ITEM_LOSSES)}")
        if self.eval_prompt not in PROMPT_KINDS:
            bad("eval_prompt", f"expected one of {', '.join(PROMPT_KINDS)}")
        if self.eval_prompt == "sequence" and not float(self.tasks.get(SEQUENCE_TASK, 0)) > 0:
            bad("eval_prompt", f"'sequence' continues what the {SEQUENCE_TASK} task trains; give it a ratio > 0")
        if not 0.0 <= self.teacher_weight <= 1.0:
            bad("teacher_weight", "must be in [0, 1]")
        if not self.teacher_temperature > 0:
            bad("teacher_temperature", "must be > 0")
        if self.new_token_head not in NEW_TOKEN_HEADS:
            bad("new_token_head", f"expected one of {', '.join(NEW_TOKEN_HEADS)}")
        if self.valid_metric not in VALID_METRICS:
            bad("valid_metric", f"expected one of {', '.join(VALID_METRICS)}")
        if self.item_prior not in ITEM_PRIORS:
            bad("item_prior", f"expected one of {', '.join(ITEM_PRIORS)}")
        if self.item_prior != "none" and (self.item_loss != "trie" or self.new_token_head != "untied"):
            bad("item_prior", "needs item_loss=trie (the prior is added inside the trie's softmax) and "
                              "new_token_head=untied (index logits starting at 0)")
        if self.new_token_head_lr is not None and not (self.new_token_head == "untied" and self.new_token_head_lr > 0
                                                       and self.new_token_lr is not None):
            bad("new_token_head_lr", "needs new_token_head=untied and new_token_lr, and must be > 0")
        if self.new_token_lr is not None and not self.new_token_lr > 0:
            bad("new_token_lr", "must be > 0 or None")
        if self.new_token_lr is not None and (self.finetune != "lora" or self.embeddings != "new_tokens"):
            bad("new_token_lr", "needs finetune=lora and embeddings=new_tokens (only there are the new rows their "
                                "own parameters)")
        for name in ("num_beams", "eval_batch_size", "batch_size", "max_length"):
            if getattr(self, name) < 1:
                bad(name, "must be >= 1")
        for name in ("valid_users", "test_users"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                bad(name, "must be >= 1 or None")
        if self.max_steps is None and self.epochs is None:
            bad("max_steps", "set max_steps or epochs")
        if isinstance(self.rqvae, dict):
            self.rqvae = RQVAEConfig(**self.rqvae)
        self.rqvae.validate()


