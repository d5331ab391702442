"""Mult-VAE (Liang et al., 2018, "Variational Autoencoders for Collaborative Filtering") on a holdout split.

Model: a user's binary train row x over all items, L2-normalised, dropout (0.5) on the input, encoder
Linear(n_items, 600)-tanh-Linear(600, 2x200) giving the mean and log-variance of z; decoder Linear(200, 600)-
tanh-Linear(600, n_items) giving item logits. Loss: multinomial negative log-likelihood -sum_i x_i log softmax(f(z))_i
plus beta x KL(q(z|x) || N(0, I)), beta annealed linearly by update count up to `beta_cap` (0.2). Adam lr 1e-3,
batches of 500 users, no weight decay (the authors' notebook: lam 0). Weights Xavier-uniform, biases N(0, 0.001).

Protocol here is the CLLM4Rec one (weak generalisation): every user's train items are both the training input and
the input that scores their valid / test items; train items are excluded from the ranking. Early stopping keeps the
epoch with the best validation NDCG@100 (the authors' selection). Item id 0 (padding) has no column: the network
covers ids 1..n_items-1 and scores come back with column 0 at -inf.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from llmrec.collab.loop import run_epochs
from llmrec.data.holdout import HoldoutSplit, evaluate_scores
from llmrec.errors import LlmrecError
from llmrec.methods.multvae.config import MultVAEConfig
from llmrec.tracking import Tracker


class MultVAE(nn.Module):
    """Encoder and decoder over items 1..n_items-1 (id 0 has no column)."""

    def __init__(self, n_items: int, config: MultVAEConfig | None = None):
        super().__init__()
        self.config = config or MultVAEConfig()
        self.n_items = int(n_items)
        c, width = self.config, self.n_items - 1
        self.encoder = nn.Linear(width, c.hidden)
        self.to_latent = nn.Linear(c.hidden, 2 * c.latent)
        self.decoder = nn.Linear(c.latent, c.hidden)
        self.to_items = nn.Linear(c.hidden, width)
        for layer in (self.encoder, self.to_latent, self.decoder, self.to_items):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.normal_(layer.bias, std=0.001)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x [B, n_items] binary rows (column 0 ignored) -> (logits [B, n_items-1], mu, logvar)."""
        h = F.normalize(x[:, 1:], dim=1)
        h = F.dropout(h, self.config.dropout, training=self.training)
        h = torch.tanh(self.encoder(h))
        mu, logvar = self.to_latent(h).chunk(2, dim=1)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        return self.to_items(torch.tanh(self.decoder(z))), mu, logvar

    def loss(self, x: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(multinomial NLL + beta KL, KL), both means over the batch's users."""
        logits, mu, logvar = self(x)
        nll = -(F.log_softmax(logits, dim=1) * x[:, 1:]).sum(1).mean()
        kl = (0.5 * (-logvar + logvar.exp() + mu.pow(2) - 1)).sum(1).mean()
        return nll + beta * kl, kl

    @torch.no_grad()
    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """[B, n_items] item scores (z = mu), column 0 at -inf."""
        was = self.training
        self.eval()
        logits = self(x)[0]
        self.train(was)
        return F.pad(logits, (1, 0), value=float("-inf"))


@dataclass
class MultVAEResult:
    model: MultVAE
    """The model with its best weights loaded, in eval mode."""
    best_epoch: int
    best_valid: dict
    """Validation metrics of the best epoch (recall@20, recall@40, ndcg@100, ...)."""
    test: dict
    """Test metrics with the best weights."""
    history: list[dict] = field(default_factory=list)
    """Per epoch: epoch, loss, kl, beta, and validation metrics."""
    seconds: float = 0.0
    stopped_early: bool = False


def dense_rows(matrix, users: np.ndarray, device=None) -> torch.Tensor:
    """Rows of a scipy CSR matrix as a dense float tensor."""
    return torch.as_tensor(matrix[users].toarray(), dtype=torch.float32, device=device)


def train_multvae(split: HoldoutSplit, config: MultVAEConfig | None = None,
                  checkpoint: str | Path | None = None, tracker: Tracker | None = None,
                  seed: int = 2023) -> MultVAEResult:
    """Train Mult-VAE on the split's train pairs, select the best validation NDCG@100 epoch, score the test part.

    The epochs are `llmrec.collab.loop`'s: `checkpoint`, a file written after every epoch; when it exists, training
    resumes from it with the same subsequent batches, so a killed run ends as an uninterrupted one. `tracker`
    (llmrec.tracking) gets train_loss, kl, beta, lr, samples_per_s and valid_<metric> every epoch."""
    config = config or MultVAEConfig()
    if split.n_items < 3:
        raise LlmrecError(f"{split.name}: Mult-VAE needs at least two items")
    torch.manual_seed(seed)  # the experiment's seed: initialisation, shuffling, dropout, noise
    model = MultVAE(split.n_items, config)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    train = split.matrix("train")
    users = np.flatnonzero(np.asarray(train.sum(1)).ravel() > 0)
    steps_per_epoch = math.ceil(len(users) / config.batch_size)
    anneal = config.anneal_steps or max(1, round(0.75 * config.epochs * steps_per_epoch / config.beta_cap))
    score = lambda batch: model.scores(dense_rows(train, batch))  # noqa: E731

    gen = np.random.default_rng(seed)
    updates = 0

    def train_epoch(epoch: int) -> dict:
        nonlocal updates
        order = gen.permutation(users)
        total = kl_total = 0.0
        for start in range(0, len(order), config.batch_size):
            batch = order[start:start + config.batch_size]
            beta = min(config.beta_cap, updates / anneal)
            loss, kl = model.loss(dense_rows(train, batch), beta)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            updates += 1
            total += loss.item() * len(batch)
            kl_total += kl.item() * len(batch)
        return {"loss": total / len(order), "kl": kl_total / len(order), "beta": beta}

    def resume(extra: dict) -> None:
        nonlocal updates
        updates = extra["updates"]
        gen.bit_generator.state = extra["gen"]

    fingerprint = {k: v for k, v in asdict(config).items() if k not in ("patience", "progress", "eval_batch_size")}
    loop = run_epochs(model, optimizer, train_epoch,
                      lambda: evaluate_scores(split, "valid", score, config.eval_batch_size),
                      epochs=config.epochs, metric="ndcg@100", patience=config.patience,
                      samples_per_epoch=len(users), checkpoint=checkpoint,
                      fingerprint={**fingerprint, "users": len(users), "items": split.n_items, "seed": seed},
                      extra_state=lambda: {"updates": updates, "gen": gen.bit_generator.state},
                      load_extra_state=resume, tracker=tracker, progress=config.progress, desc="mult-vae")
    test = evaluate_scores(split, "test", score, config.eval_batch_size, intervals=True)
    return MultVAEResult(model=model, best_epoch=loop.best_epoch, best_valid=loop.best_metrics, test=test,
                         history=loop.history, seconds=loop.seconds, stopped_early=loop.stopped_early)
