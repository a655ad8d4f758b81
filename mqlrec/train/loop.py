"""The training loop: AdamW + warmup/cosine, bf16 autocast on GPU, DDP, early stopping, resumable state."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import nvtx
import torch
from tqdm import tqdm

from mqlrec.tasks import Samples
from mqlrec.train import distributed
from mqlrec.train.batches import epoch_batches, to_batch


@dataclass
class FitConfig:
    epochs: int
    lr: float = 5e-4
    weight_decay: float = 0.01
    warmup_ratio: float = 0.01
    batch_size: int = 256
    patience: int = 10  # epochs without a better valid score before stopping (0 = never stop early)
    eval_every: int = 1
    seed: int = 0
    bf16: bool = False
    grad_clip: float = 1.0


def autocast(device: str, enabled: bool):
    return torch.autocast(device_type="cuda" if device.startswith("cuda") else "cpu", dtype=torch.bfloat16, enabled=enabled)


def make_optimizer(model: torch.nn.Module, cfg: FitConfig, total_steps: int):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim < 2 or "layer_norm" in name else decay).append(p)
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr
    )
    warmup = max(1, int(round(cfg.warmup_ratio * total_steps)))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


def fit(
    recommender: torch.nn.Module,
    samples: Samples,
    cfg: FitConfig,
    device: str,
    validate: Callable[[int], float | None] | None = None,
    save: Callable[[str, dict], None] | None = None,
    log: Callable[[dict], None] | None = None,
    state: dict | None = None,
    stage: str = "train",
    stop_after: int | None = None,
) -> dict:
    """Train for cfg.epochs (from `state` when resuming); return the final state summary.

    validate(epoch) → score (higher is better) or None; save(kind, train_state) with kind "last"
    (every epoch, for --resume) or "best" (a new best valid score). Both run on every rank (they
    may be collective); the caller makes only rank 0 write files.
    """
    rank, world = distributed.rank(), distributed.world_size()
    model = recommender
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(
            recommender, device_ids=[torch.device(device).index] if device.startswith("cuda") else None
        )
    steps_per_epoch = len(epoch_batches(len(samples), cfg.batch_size, 0, cfg.seed, rank, world, samples.src_len))
    opt, sched = make_optimizer(recommender, cfg, max(1, steps_per_epoch * cfg.epochs))
    start_epoch, best, best_epoch, bad_epochs = 0, -math.inf, -1, 0
    if state is not None:
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"]["torch"])
        if device.startswith("cuda") and state["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(state["rng"]["cuda"])
        start_epoch, best, best_epoch, bad_epochs = state["epoch"] + 1, state["best"], state["best_epoch"], state["bad_epochs"]
    stopped_early = interrupted = False
    for epoch in range(start_epoch, cfg.epochs):
        if cfg.patience and bad_epochs >= cfg.patience:
            stopped_early = True
            break
        if stop_after is not None and epoch - start_epoch >= stop_after:
            interrupted = True
            break
        recommender.train()
        batches = epoch_batches(len(samples), cfg.batch_size, epoch, cfg.seed, rank, world, samples.src_len)
        t0, loss_sum, n_seen, implicit_sum = time.perf_counter(), 0.0, 0, 0.0
        bar = tqdm(batches, desc=f"{stage} epoch {epoch + 1}/{cfg.epochs}", disable=rank != 0, leave=False)
        for idx in bar:
            with nvtx.annotate("data"):
                batch = to_batch(samples, idx, device)
            with nvtx.annotate("forward"), autocast(device, cfg.bf16):
                loss, parts = model(**batch)
            with nvtx.annotate("backward"):
                opt.zero_grad(set_to_none=True)
                loss.backward()
            with nvtx.annotate("optimizer"):
                if cfg.grad_clip:
                    torch.nn.utils.clip_grad_norm_(recommender.parameters(), cfg.grad_clip)
                opt.step()
                sched.step()
            loss_sum += float(loss.detach()) * len(idx)
            implicit_sum += float(parts.get("implicit", 0.0)) * len(idx)
            n_seen += len(idx)
            bar.set_postfix(loss=f"{loss_sum / n_seen:.4f}")
        seconds = time.perf_counter() - t0
        record = {
            "stage": stage,
            "epoch": epoch + 1,
            "loss": distributed.all_reduce_mean(loss_sum / max(1, n_seen)),
            "lr": sched.get_last_lr()[0],
            **({"implicit_loss": distributed.all_reduce_mean(implicit_sum / max(1, n_seen))} if recommender.implicit_weight > 0 else {}),
            "train_samples_per_s": n_seen * world / max(seconds, 1e-9),
            "epoch_seconds": seconds,
        }
        if validate is not None and ((epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs):
            score = validate(epoch)
            record["valid_score"] = score
            if score is not None and score > best:
                best, best_epoch, bad_epochs = score, epoch, 0
                if save:
                    save("best", {})
            elif score is not None:
                bad_epochs += cfg.eval_every
        if log:
            log(record)
        if save:
            save(
                "last",
                {
                    "stage": stage,
                    "epoch": epoch,
                    "best": best,
                    "best_epoch": best_epoch,
                    "bad_epochs": bad_epochs,
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "rng": {
                        "torch": torch.get_rng_state(),
                        "cuda": torch.cuda.get_rng_state() if device.startswith("cuda") else None,
                        "numpy": np.random.get_state(),
                    },
                },
            )
    return {"best": best, "best_epoch": best_epoch + 1, "stopped_early": stopped_early, "interrupted": interrupted}
