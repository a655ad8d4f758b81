"""Train one RQ-VAE per modality (method "rqvae") or both jointly with MACRec's losses ("macrec").

Like the official trainer, the collision count of all items is checked every `eval_every` epochs (and
after the last) and the state with the fewest collisions is kept (per modality for "rqvae", summed for
"macrec"; the earliest on ties).
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field

import numpy as np
import nvtx
import torch
from tqdm import tqdm

from mqlrec.tokenizer.collisions import count_collisions
from mqlrec.tokenizer.config import TokenizerConfig
from mqlrec.tokenizer.macrec import cross_modal_loss, pseudo_labels
from mqlrec.tokenizer.rqvae import RQVAE


@dataclass
class TrainedTokenizer:
    models: dict[str, RQVAE]
    best_epoch: dict[str, int]  # epoch (1-based) whose state was kept
    best_collisions: dict[str, int]
    history: list[dict] = field(default_factory=list)  # per epoch: mean losses


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def _collisions(model: RQVAE, x: torch.Tensor) -> int:
    model.eval()
    codes = model.quantize_all(x).codes.cpu().numpy()
    model.train()
    return count_collisions(codes)


def train_tokenizer(embeddings: dict[str, np.ndarray], config: TokenizerConfig) -> TrainedTokenizer:
    config.validate()
    modalities = list(embeddings)
    if config.method == "macrec" and len(modalities) != 2:
        raise ValueError(f"method 'macrec' needs exactly two modalities (text and image), got {modalities}")
    generator = seed_everything(config.seed)
    device = torch.device(config.device)
    xs = {m: torch.as_tensor(np.asarray(e, dtype=np.float32), device=device) for m, e in embeddings.items()}
    n_items = len(next(iter(xs.values())))
    models: dict[str, RQVAE] = {}
    for i, m in enumerate(modalities):
        models[m] = RQVAE(
            xs[m].shape[1], tuple(config.hidden), config.e_dim, config.levels, config.codebook_size,
            config.dropout, config.beta, config.detach_residuals,
        ).to(device)
        with nvtx.annotate("tokenizer.kmeans_init"):
            models[m].kmeans_init(xs[m], config.kmeans_iters, config.seed + 1000 * i)
    labels = {}
    if config.method == "macrec":
        for i, m in enumerate(modalities):
            labels[m] = torch.as_tensor(
                pseudo_labels(embeddings[m], config.n_clusters, config.kmeans_iters, config.seed + 7 + i), device=device
            )
    params = [p for model in models.values() for p in model.parameters()]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)

    def selection_scores(collisions: dict[str, int]) -> dict[str, int]:
        total = sum(collisions.values())
        return {m: (total if config.method == "macrec" else c) for m, c in collisions.items()}

    # As the official trainer, only trained states compete (the k-means initialisation is not a candidate;
    # the last epoch is always evaluated, so some state is always kept).
    best = {m: float("inf") for m in modalities}
    best_collisions = {m: -1 for m in modalities}
    best_epoch = {m: 0 for m in modalities}
    best_state: dict[str, dict] = {}
    history = []
    bar = tqdm(range(1, config.epochs + 1), desc=f"tokenizer[{config.method}]", disable=not config.progress)
    for epoch in bar:
        order = torch.randperm(n_items, generator=generator).to(device)
        sums: dict[str, float] = {}
        n_batches = 0
        for start in range(0, n_items, config.batch_size):
            idx = order[start : start + config.batch_size]
            with nvtx.annotate("tokenizer.step"):
                outs = {m: models[m](xs[m][idx]) for m in modalities}
                loss = sum(o.recon_loss + o.rq_loss for o in outs.values())
                parts = {f"recon_{m}": o.recon_loss.item() for m, o in outs.items()}
                parts.update({f"rq_{m}": o.rq_loss.item() for m, o in outs.items()})
                if config.method == "macrec":
                    t, v = modalities
                    extra, extra_parts = cross_modal_loss(
                        outs[t], outs[v], labels[t][idx], labels[v][idx], tuple(config.con_levels),
                        config.con_weight, config.align_weight, config.tau, config.align_on, generator,
                    )
                    loss = loss + extra
                    parts.update(extra_parts)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"tokenizer loss is {float(loss)} at epoch {epoch}")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            parts["loss"] = loss.item()
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v
            n_batches += 1
        record = {"epoch": epoch, **{k: v / n_batches for k, v in sums.items()}}
        if epoch % config.eval_every == 0 or epoch == config.epochs:
            collisions = {m: _collisions(models[m], xs[m]) for m in modalities}
            scores = selection_scores(collisions)
            for m in modalities:
                if scores[m] < best[m]:
                    best[m], best_collisions[m], best_epoch[m] = scores[m], collisions[m], epoch
                    best_state[m] = copy.deepcopy(models[m].state_dict())
            record["collisions"] = collisions
            bar.set_postfix(loss=f"{record['loss']:.4f}", coll=sum(collisions.values()), best=sum(best_collisions.values()))
        history.append(record)
    for m in modalities:
        models[m].load_state_dict(best_state[m])
        models[m].eval()
    return TrainedTokenizer(models=models, best_epoch=best_epoch, best_collisions=best_collisions, history=history)
