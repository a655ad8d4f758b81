"""`python -m mqlrec.train`: tokenize → (pre-train on source domains) → train on the target → test.

With no arguments every stage runs on the synthetic default dataset and finishes in a few minutes
on a laptop CPU. `torchrun --nproc_per_node N -m mqlrec.train ...` trains with DDP (gloo on CPU,
nccl on GPU) and shards the evaluation over the ranks (every user counted exactly once).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time

import numpy as np
import torch

from mqlrec.data import DataError
from mqlrec.language import Language
from mqlrec.model import GenerativeRecommender, ModelConfig, build_model
from mqlrec.tasks import ALL_TASKS, NIG_TASK, SequenceTable, build_samples, concat_samples, default_tasks, resolve_tasks
from mqlrec.train import distributed
from mqlrec.train.baselines import Popularity
from mqlrec.train.checkpoint import (
    CheckpointError,
    check_compatible,
    dataset_fingerprint,
    item_titles,
    language_shape,
    load_checkpoint,
    load_train_state,
    read_meta,
    save_checkpoint,
)
from mqlrec.train.evaluation import METRICS, eval_users, evaluate, validation_score
from mqlrec.train.loop import FitConfig, autocast, fit
from mqlrec.train.metrics_log import MetricsLog

RECIPES = {
    # lr and implicit-alignment weight of the two papers' fine-tuning recipes
    "mql4grec": {"lr": 5e-4, "implicit_weight": 0.0},
    "macrec": {"lr": 1e-3, "implicit_weight": 0.01},
}
# The synthetic default must finish in minutes on a laptop CPU: a smaller T5 and RQ-VAE than the papers'.
SYNTHETIC_DEFAULTS = {
    "epochs": 6, "tokenizer_epochs": 30, "tokenizer_batch_size": 128, "tokenizer_hidden": [256, 128, 64],
    "levels": 3, "codebook_size": 32,
    "d_model": 64, "d_ff": 256, "d_kv": 16, "num_heads": 4, "num_layers": 2, "lr": 3e-3, "valid_users": 256,
}
REAL_DEFAULTS = {
    "epochs": 200, "tokenizer_epochs": 500, "tokenizer_batch_size": 2048, "tokenizer_hidden": [2048, 1024, 512, 256, 128, 64],
    "levels": 4, "codebook_size": 256, "valid_users": 512,
    "d_model": 128, "d_ff": 1024, "d_kv": 64, "num_heads": 6, "num_layers": 4,
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m mqlrec.train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("data and IDs")
    g.add_argument("--data", help="dataset folder (MQL4GRec or LC-Rec format); default: the synthetic dataset")
    g.add_argument("--synthetic-users", type=int, default=1500, help="users of the synthetic dataset (without --data)")
    g.add_argument("--synthetic-items", type=int, default=500, help="items of the synthetic dataset (without --data)")
    g.add_argument("--index", action="append", default=[], metavar="MODALITY=PATH",
                   help="semantic IDs of one modality (X.index_*.json), e.g. text=Instruments.index_lemb.json; repeatable. "
                   "Without it the folder's own index files are used, else the IDs are learned (tokenize stage)")
    g.add_argument("--modalities", nargs="+", choices=["text", "image"], help="modalities to use (default: all available)")
    g.add_argument("--codebook-size", type=int, help="codes per level K (256 for real data, 32 for synthetic)")
    g.add_argument("--levels", type=int, help="ID levels L learned by the tokenize stage (4 real, 3 synthetic)")
    g.add_argument("--tokenizer-epochs", type=int, help="RQ-VAE epochs of the tokenize stage (500 real, 30 synthetic)")
    g.add_argument("--tokenizer-method", default="rqvae", choices=["rqvae", "macrec"], help="tokenizer of the tokenize stage")
    g.add_argument("--tokenizer-batch-size", type=int, help="RQ-VAE batch size (2048 real, 128 synthetic)")
    g.add_argument("--tokenizer-hidden", type=int, nargs="+", help="RQ-VAE encoder hidden sizes (official 2048 ... 64; synthetic 256 128 64)")
    g.add_argument("--max-history", type=int, default=20, help="history items per prompt (last N)")
    g = p.add_argument_group("pre-training (MQL4GRec: NIG tasks on source domains)")
    g.add_argument("--pretrain", nargs="+", default=[], metavar="DIR",
                   help="source-domain dataset folders with their own X.index_*.json IDs (same L and K)")
    g.add_argument("--pretrain-epochs", type=int, default=30, help="pre-training epochs")
    g = p.add_argument_group("training")
    g.add_argument("--recipe", choices=sorted(RECIPES), default="mql4grec", help="lr / implicit-weight defaults of a paper")
    g.add_argument("--tasks", nargs="+", help=f"tasks ({', '.join(ALL_TASKS)}, fusionseqrec = both AIG tasks); default all the modalities allow")
    g.add_argument("--epochs", type=int, help="maximum epochs (200 real, 6 synthetic)")
    g.add_argument("--lr", type=float, help="peak learning rate (recipe: 5e-4 MQL4GRec, 1e-3 MACRec; synthetic 2e-3)")
    g.add_argument("--weight-decay", type=float, default=0.01, help="AdamW weight decay")
    g.add_argument("--warmup-ratio", type=float, default=0.01, help="linear warm-up share of all steps, then cosine decay")
    g.add_argument("--batch-size", type=int, default=256, help="training batch size per process")
    g.add_argument("--implicit-weight", type=float, help="weight of MACRec's implicit alignment loss (recipe: 0 / 0.01)")
    g.add_argument("--patience", type=int, default=10, help="stop after this many epochs without a better valid score (0 = never)")
    g.add_argument("--max-train-samples", type=int, help="train on a seeded random subset of this many samples")
    g = p.add_argument_group("model (official with --data: 128 / 1024 / 64 / 6 heads / 4+4 layers; synthetic: 64 / 256 / 16 / 4 / 2+2)")
    g.add_argument("--d-model", type=int, help="hidden size")
    g.add_argument("--d-ff", type=int, help="feed-forward size")
    g.add_argument("--d-kv", type=int, help="size per attention head")
    g.add_argument("--num-heads", type=int, help="attention heads")
    g.add_argument("--num-layers", type=int, help="encoder layers = decoder layers")
    g.add_argument("--dropout", type=float, default=0.1, help="dropout rate")
    g = p.add_argument_group("evaluation")
    g.add_argument("--beam-width", type=int, default=20, help="beams per modality (also the ranking length)")
    g.add_argument("--eval-batch-size", type=int, default=512,
                   help="users handed to the search at once (it sorts them by history length and decodes them in "
                        "chunks of 32 on CPU, 256 on CUDA; more users, less padding); also the DDP cut of the evaluation")
    g.add_argument("--eval-users", type=int, help="evaluate the test split on a seeded random subset of N users (default: all)")
    g.add_argument("--valid-users", type=int, help="users of the per-epoch validation (0 = all; default 512 real, 256 synthetic)")
    g.add_argument("--valid-metric", choices=["ndcg", "loss"], default="ndcg", help="early-stopping criterion: valid NDCG@10 or valid loss")
    g.add_argument("--eval-every", type=int, default=1, help="validate every N epochs")
    g.add_argument("--eval-checkpoint", metavar="DIR", help="only evaluate this checkpoint on the test split (no training)")
    g = p.add_argument_group("run")
    g.add_argument("--out", default=None, help="output folder (checkpoints best/ and last/, metrics.jsonl, results.json); default runs/<dataset>")
    g.add_argument("--resume", action="store_true", help="continue from OUT/last (model, optimizer, scheduler, RNG, epoch)")
    g.add_argument("--stop-after", type=int, metavar="N",
                   help="leave after N training epochs of this invocation (no test), to continue later with --resume")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    g.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto", help="bf16 autocast (auto: on CUDA when supported)")
    g.add_argument("--seed", type=int, default=0, help="seed of everything (data subsets, init, shuffling, dropout)")
    g.add_argument("--tensorboard", action="store_true", help="also write TensorBoard events to OUT/tb (needs tensorboard)")
    return p


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def parse_index_args(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        modality, sep, path = item.partition("=")
        if not sep or modality not in ("text", "image") or not path:
            raise ValueError(f"--index {item!r}: expected text=PATH or image=PATH")
        out[modality] = path
    return out


def load_data(args):
    if args.data:
        from mqlrec.data import load_dataset

        return load_dataset(args.data)
    from mqlrec.data.synthetic import make_synthetic

    return make_synthetic(seed=args.seed, n_items=args.synthetic_items, n_users=args.synthetic_users)


def get_codes(args, dataset, out_dir: str, log) -> dict[str, np.ndarray]:
    """The stage 'tokenize': given index files, else the dataset's own IDs, else learn them."""
    from mqlrec.data import read_index

    index = parse_index_args(args.index)
    if index:
        codes = {}
        for modality, path in index.items():
            found, table = read_index(path, dataset.n_items)
            if found != modality:
                raise DataError(f"{path}: holds {found} IDs, given as --index {modality}=")
            codes[modality] = table
        return codes
    if dataset.codes:
        return dict(dataset.codes)
    embeddings = dict(dataset.embeddings)
    if args.data and not embeddings:
        from mqlrec.data import embedding_path, load_embedding

        for m in ("text", "image"):
            path = embedding_path(args.data, m)
            if os.path.exists(path):
                embeddings[m] = load_embedding(path, dataset.n_items)
    if args.modalities:
        embeddings = {m: e for m, e in embeddings.items() if m in args.modalities}
    if not embeddings:
        raise DataError(f"{args.data}: no semantic IDs (--index or X.index_*.json) and no embeddings (X.emb-<modality>.npy) to learn them from")
    codes = None
    if distributed.rank() == 0:
        from mqlrec.tokenizer import TokenizerConfig, tokenize_dataset

        t0 = time.perf_counter()
        cfg = TokenizerConfig(
            method=args.tokenizer_method, levels=args.levels, codebook_size=args.codebook_size,
            epochs=args.tokenizer_epochs, batch_size=args.tokenizer_batch_size, hidden=tuple(args.tokenizer_hidden),
            con_levels=tuple(range(max(0, args.levels - 2), args.levels)),  # MACRec: the last two levels
            seed=args.seed, device=args.device_resolved,
        )
        result = tokenize_dataset(embeddings, cfg)
        codes = result.codes
        log({"stage": "tokenize", "seconds": time.perf_counter() - t0, "stats": result.stats})
        from mqlrec.data import write_index

        os.makedirs(out_dir, exist_ok=True)
        for m, c in codes.items():
            write_index(os.path.join(out_dir, f"{dataset.name}.index_{m}.json"), m, c)
    return distributed.broadcast(codes)


def make_language(codes: dict[str, np.ndarray], codebook_size: int) -> Language:
    return Language(codes, ALL_TASKS, n_codes={m: max(codebook_size, int(c.max()) + 1) for m, c in codes.items()})


def pretrain_samples(dirs: list[str], language: Language, max_history: int):
    """NIG samples of every source domain, written in the target's vocabulary layout."""
    from mqlrec.data import load_dataset

    parts = []
    for d in dirs:
        source = load_dataset(d)
        missing = [m for m in language.modalities if m not in source.codes]
        if missing:
            raise DataError(f"{d}: source domain has no {missing} IDs (X.index_lemb.json / X.index_vitemb.json)")
        codes = {m: source.codes[m] for m in language.modalities}
        src_lang = Language(codes, ALL_TASKS, n_codes=language.n_codes)
        if language_shape(src_lang) != language_shape(language):
            raise DataError(f"{d}: source IDs have shape {language_shape(src_lang)}, the target's {language_shape(language)}")
        tasks = [NIG_TASK[m] for m in language.modalities]
        parts.append(build_samples(source.sequences, src_lang, tasks, split="train", max_history=max_history))
    return concat_samples(parts)


def print_table(results: dict, title: str) -> None:
    names = [n for n in ("text", "image", "ensemble", "popularity") if n in results]
    print(f"\n{title} ({results['n_users']} users)")
    print(f"{'':<12}" + "".join(f"{k:>10}" for k in METRICS))
    for n in names:
        print(f"{n:<12}" + "".join(f"{results[n][k]:>10.4f}" for k in METRICS))
    sys.stdout.flush()


def run(args) -> dict:
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: CUDA is not available")
    rank, world, device = distributed.init(device)
    args.device_resolved = device
    bf16 = args.precision == "bf16" or (args.precision == "auto" and device.startswith("cuda") and torch.cuda.is_bf16_supported())
    seed_everything(args.seed)
    synthetic = not args.data
    for key, value in (SYNTHETIC_DEFAULTS if synthetic else REAL_DEFAULTS).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    for key, value in RECIPES[args.recipe].items():
        if getattr(args, key) is None:
            setattr(args, key, value)

    dataset = load_data(args)
    out_dir = args.out or os.path.join("runs", dataset.name)
    log = MetricsLog(os.path.join(out_dir, "metrics.jsonl"), tensorboard=args.tensorboard, enabled=rank == 0)
    table = SequenceTable(dataset.sequences, dataset.n_items)
    fingerprint = dataset_fingerprint(dataset.sequences, dataset.n_items)
    popularity = Popularity(table, k=max(args.beam_width, 10))
    test_users = eval_users(table, "test", args.eval_users, args.seed)

    if args.eval_checkpoint:
        ckpt = load_checkpoint(args.eval_checkpoint, device)
        check_compatible(ckpt.meta, ckpt.language, fingerprint, args.eval_checkpoint)
        results = evaluate(ckpt.model, ckpt.language, table, "test", test_users, args.beam_width, args.eval_batch_size,
                           device, ckpt.meta.get("max_history", args.max_history), bf16, popularity, desc="test")
        return finish(results, out_dir, log, rank, "test")

    resume_state, resume_meta = None, None
    last_dir, best_dir = os.path.join(out_dir, "last"), os.path.join(out_dir, "best")
    if args.resume:
        resume_meta = read_meta(last_dir)
        resume_state = load_train_state(last_dir)
        if resume_state is None:
            raise CheckpointError(f"{last_dir}: has no training state to resume from")

    codes = None if args.resume else get_codes(args, dataset, out_dir, log)
    if args.resume:
        language = Language.load(os.path.join(last_dir, "language.json"))
        given = get_codes(args, dataset, out_dir, log) if (args.index or dataset.codes) else None
        if given is not None:
            ckpt_shape = resume_meta.get("language_shape", {})
            for m, shape in language_shape(make_language(given, args.codebook_size)).items():
                if ckpt_shape.get(m) != shape:
                    raise CheckpointError(f"{last_dir}: the given {m} IDs have shape [levels, codebook size] {shape}, "
                                          f"the checkpoint's {ckpt_shape.get(m)}")
            changed = [m for m in language.modalities if m in given and not np.array_equal(given[m], language.codes[m])]
            if changed:
                raise CheckpointError(f"{last_dir}: the given {changed} IDs differ from the ones this run was trained with")
        check_compatible(resume_meta, language, fingerprint, last_dir)
    else:
        if args.modalities:
            missing = set(args.modalities) - set(codes)
            if missing:
                raise DataError(f"--modalities {' '.join(args.modalities)}: no IDs for {sorted(missing)}")
            codes = {m: c for m, c in codes.items() if m in args.modalities}
        language = make_language(codes, args.codebook_size)
    tasks = resolve_tasks(args.tasks, language.modalities) if args.tasks else default_tasks(language.modalities)
    if args.implicit_weight > 0 and len(language.modalities) < 2:
        raise ValueError("--implicit-weight > 0 needs both text and image IDs")

    model_config = ModelConfig(d_model=args.d_model, d_ff=args.d_ff, d_kv=args.d_kv, num_heads=args.num_heads,
                               num_layers=args.num_layers, num_decoder_layers=args.num_layers, dropout_rate=args.dropout)
    if args.resume:
        from mqlrec.model import load_model

        t5 = load_model(last_dir).to(device)
    else:
        t5 = build_model(model_config, language.vocab_size).to(device)
    recommender = GenerativeRecommender(t5, {m: language.item_tokens(m) for m in language.modalities},
                                        implicit_weight=args.implicit_weight).to(device)
    meta = {
        "dataset": dataset.name,
        "fingerprint": fingerprint,
        "n_items": dataset.n_items,
        "n_users": dataset.n_users,
        "modalities": language.modalities,
        "tasks": tasks,
        "max_history": args.max_history,
        "language_shape": language_shape(language),
        "model_config": model_config.to_dict(),
        "args": {k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool, list, type(None)))},
    }
    titles = item_titles(dataset)

    def saver(stage: str):
        def save(kind: str, train_state: dict) -> None:
            if rank == 0:
                path = last_dir if kind == "last" else best_dir
                save_checkpoint(path, t5, language, {**meta, "stage": stage}, titles, train_state if kind == "last" else None)
            distributed.barrier()

        return save

    fit_common = dict(lr=args.lr, weight_decay=args.weight_decay, warmup_ratio=args.warmup_ratio, batch_size=args.batch_size,
                      seed=args.seed, bf16=bf16)
    resume_stage = resume_meta.get("stage") if resume_meta else None

    # Stage: pre-training on source domains (NIG tasks only, fixed epochs, no early stopping).
    if args.pretrain and resume_stage in (None, "pretrain"):
        samples = pretrain_samples(args.pretrain, language, args.max_history)
        if rank == 0:
            print(f"pre-train: {len(samples)} samples from {len(args.pretrain)} source domain(s)")
        fit(recommender, samples, FitConfig(epochs=args.pretrain_epochs, patience=0, **fit_common), device,
            save=saver("pretrain"), log=log, state=resume_state if resume_stage == "pretrain" else None, stage="pretrain")
        resume_state = None

    # Stage: training / fine-tuning on the target dataset.
    samples = build_samples(None, language, tasks, split="train", max_history=args.max_history, table=table)
    if args.max_train_samples and args.max_train_samples < len(samples):
        keep = np.sort(np.random.default_rng(args.seed).choice(len(samples), args.max_train_samples, replace=False))
        samples = samples.subset(keep)
    if rank == 0:
        print(f"train: {len(samples)} samples, tasks {', '.join(tasks)}; {dataset.n_users} users, {dataset.n_items} items")
    valid_users = eval_users(table, "valid", args.valid_users or None, args.seed)
    valid_loss_samples = None

    def validate(epoch: int) -> float:
        nonlocal valid_loss_samples
        if args.valid_metric == "loss":
            if valid_loss_samples is None:
                valid_loss_samples = build_samples(None, language, [NIG_TASK[m] for m in language.modalities], split="valid",
                                                   max_history=args.max_history, users=valid_users, table=table)
            return -valid_loss(recommender, valid_loss_samples, args.eval_batch_size * 4, device, bf16)
        results = evaluate(t5, language, table, "valid", valid_users, args.beam_width, args.eval_batch_size, device,
                           args.max_history, bf16, popularity, desc=f"valid epoch {epoch + 1}")
        log({"stage": "valid", "epoch": epoch + 1, **{n: results[n] for n in ("text", "image", "ensemble", "popularity") if n in results}})
        return validation_score(results)

    summary = fit(recommender, samples, FitConfig(epochs=args.epochs, patience=args.patience, eval_every=args.eval_every, **fit_common),
                  device, validate=validate, save=saver("train"), log=log, state=resume_state, stage="train",
                  stop_after=args.stop_after)
    log({"stage": "train_done", **summary})
    if summary["interrupted"]:
        log.close()
        return {"interrupted": True}

    # Stage: test with the best validated weights.
    if os.path.isdir(best_dir):
        from mqlrec.model import load_model

        t5 = load_model(best_dir).to(device)
    results = evaluate(t5, language, table, "test", test_users, args.beam_width, args.eval_batch_size, device,
                       args.max_history, bf16, popularity, desc="test")
    return finish(results, out_dir, log, rank, "test")


@torch.no_grad()
def valid_loss(recommender, samples, batch_size: int, device: str, bf16: bool) -> float:
    from mqlrec.train.batches import to_batch

    recommender.eval()
    total = 0.0
    for i in range(0, len(samples), batch_size):
        idx = np.arange(i, min(i + batch_size, len(samples)))
        batch = to_batch(samples, idx, device)
        batch.pop("items")
        with autocast(device, bf16):
            loss, _ = recommender(**batch)
        total += float(loss) * len(idx)
    return total / max(1, len(samples))


def finish(results: dict, out_dir: str, log, rank: int, split: str) -> dict:
    summary = {k: v for k, v in results.items() if k != "per_user"}
    if rank == 0:
        print_table(summary, f"{split} metrics")
        log({"stage": split, **summary})
        os.makedirs(out_dir, exist_ok=True)
        tmp = os.path.join(out_dir, "results.json.tmp")
        with open(tmp, "w") as f:
            json.dump(summary, f, indent=1)
        os.replace(tmp, os.path.join(out_dir, "results.json"))
    log.close()
    return results


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except (DataError, CheckpointError, FileNotFoundError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        distributed.shutdown()
    return 0
