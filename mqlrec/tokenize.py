"""CLI: learn semantic IDs for a dataset's items and write X.index_<modality>.json, stats and a usage plot.

  python -m mqlrec.tokenize --data DIR --emb text=PATH.npy [--emb image=PATH.npy] --out OUT
  python -m mqlrec.tokenize --out OUT            # synthetic default dataset, text and image
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from mqlrec.language.vocabulary import LEVEL_LETTERS


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    from mqlrec.tokenizer.config import TokenizerConfig

    d = TokenizerConfig()
    p = argparse.ArgumentParser(prog="python -m mqlrec.tokenize", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="dataset folder (MQL4GRec or LC-Rec format); default: the synthetic dataset")
    p.add_argument("--emb", action="append", default=[], metavar="MODALITY=PATH",
                   help="item embedding table .npy [N, D] for a modality (text or image); repeatable. "
                        "Default with --data: DIR/X.emb-<modality>.npy where present")
    p.add_argument("--out", required=True, help="output folder (created); gets X.index_<modality>.json, X.tokenize_stats.json, X.code_usage.png")
    p.add_argument("--method", choices=["rqvae", "macrec"], default=d.method, help="rqvae: one RQ-VAE per modality; macrec: joint cross-modal quantization (needs text and image)")
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"training epochs (default {d.epochs}, official)")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help=f"default {d.batch_size}")
    p.add_argument("--lr", type=float, default=d.lr, help=f"AdamW learning rate (default {d.lr})")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay, help=f"AdamW weight decay (default {d.weight_decay})")
    p.add_argument("--hidden", type=_ints, default=d.hidden, help="encoder hidden sizes, comma-separated (default 2048,1024,512,256,128,64)")
    p.add_argument("--e-dim", type=int, default=d.e_dim, help=f"code vector size (default {d.e_dim})")
    p.add_argument("--levels", type=int, default=d.levels, help=f"codebook levels L (default {d.levels})")
    p.add_argument("--codebook-size", type=int, default=d.codebook_size, help=f"codes per level K (default {d.codebook_size})")
    p.add_argument("--eval-every", type=int, default=d.eval_every, help=f"epochs between collision checks; the state with the fewest is kept (default {d.eval_every})")
    p.add_argument("--kmeans-iters", type=int, default=d.kmeans_iters, help=f"faiss k-means iterations (default {d.kmeans_iters})")
    p.add_argument("--detach-residuals", action="store_true", help="official residual chain (no gradient past level 0)")
    p.add_argument("--clusters", type=int, default=d.n_clusters, help=f"MACRec k-means pseudo-label clusters per modality (default {d.n_clusters})")
    p.add_argument("--con-levels", type=_ints, default=d.con_levels, help="MACRec levels with the residual InfoNCE (default 2,3)")
    p.add_argument("--con-weight", type=float, default=d.con_weight, help=f"MACRec residual InfoNCE weight (default {d.con_weight})")
    p.add_argument("--align-weight", type=float, default=d.align_weight, help=f"MACRec reconstruction-alignment weight (default {d.align_weight})")
    p.add_argument("--align-on", choices=["straight_through", "codewords"], default=d.align_on, help="vectors aligned by MACRec's L_align (default straight_through, as official)")
    p.add_argument("--tau", type=float, default=d.tau, help=f"InfoNCE temperature (default {d.tau})")
    p.add_argument("--candidates", type=int, default=d.realloc_candidates, help="nearest codes per level kept for collision reallocation (0 = all K, default)")
    p.add_argument("--max-passes", type=int, default=d.realloc_max_passes, help="official reallocation passes before the completion phase (default 2)")
    p.add_argument("--device", default=d.device, help="torch device (default cpu)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    p.add_argument("--seed", type=int, default=d.seed, help="seed for everything, incl. the synthetic dataset (default 0)")
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    return p


def _embeddings(args, dataset) -> dict:
    from mqlrec.data import DataError, load_embedding
    from mqlrec.data.embeddings import embedding_path

    tables = {}
    for spec in args.emb:
        if "=" not in spec:
            raise DataError(f"--emb {spec!r}: expected MODALITY=PATH")
        modality, path = spec.split("=", 1)
        if modality not in LEVEL_LETTERS:
            raise DataError(f"--emb {spec!r}: modality must be one of {sorted(LEVEL_LETTERS)}")
        if modality in tables:
            raise DataError(f"--emb: modality {modality!r} given twice")
        tables[modality] = load_embedding(path, dataset.n_items)
    if not tables and args.data:
        for modality in LEVEL_LETTERS:
            path = embedding_path(args.data, modality)
            if os.path.isfile(path):
                tables[modality] = load_embedding(path, dataset.n_items)
    if not tables and not args.data:
        tables = dict(dataset.embeddings)
    if not tables:
        raise DataError(f"{args.data}: no embeddings; pass --emb text=PATH.npy")
    return {m: tables[m] for m in LEVEL_LETTERS if m in tables}  # text first


def _write_json(path: str, obj) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from mqlrec.data import DataError, load_dataset, write_index
    from mqlrec.data.synthetic import make_synthetic
    from mqlrec.tokenizer import TokenizerConfig, tokenize_dataset
    from mqlrec.tokenizer.stats import plot_code_usage

    try:
        if args.threads < 0:
            raise ValueError("--threads must be >= 0")
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        dataset = load_dataset(args.data) if args.data else make_synthetic(seed=args.seed)
        embeddings = _embeddings(args, dataset)
        config = TokenizerConfig(
            method=args.method, levels=args.levels, codebook_size=args.codebook_size, e_dim=args.e_dim,
            hidden=tuple(args.hidden), epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
            weight_decay=args.weight_decay, eval_every=args.eval_every, kmeans_iters=args.kmeans_iters,
            detach_residuals=args.detach_residuals, seed=args.seed, device=args.device,
            n_clusters=args.clusters, con_levels=tuple(args.con_levels), con_weight=args.con_weight,
            align_weight=args.align_weight, tau=args.tau, align_on=args.align_on,
            realloc_candidates=args.candidates, realloc_max_passes=args.max_passes, progress=not args.no_progress,
        )
        if args.method == "macrec" and len(embeddings) != 2:
            raise ValueError("--method macrec needs text and image embeddings")
        start = time.perf_counter()
        result = tokenize_dataset(embeddings, config)
        result.stats["dataset"] = dataset.name
        result.stats["wall_seconds"] = time.perf_counter() - start
        os.makedirs(args.out, exist_ok=True)
        # everything is computed before the first write; each file is written atomically
        for modality, codes in result.codes.items():
            write_index(os.path.join(args.out, f"{dataset.name}.index_{modality}.json"), modality, codes)
        _write_json(os.path.join(args.out, f"{dataset.name}.tokenize_stats.json"), result.stats)
        plot_code_usage(
            {m: s["usage_before"] for m, s in result.stats["modalities"].items()},
            os.path.join(args.out, f"{dataset.name}.code_usage.png"),
            title=f"{dataset.name}: items per code bucket before reallocation ({args.method})",
        )
    except (DataError, ValueError, FloatingPointError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for m, s in result.stats["modalities"].items():
        usage = " ".join(f"L{u['level'] + 1}:{u['codes_used']}" for u in s["usage_before"])
        print(
            f"{m}: {s['items']} items, collision rate {s['collision_rate_before']:.4f} -> {s['collision_rate_after']:.4f}, "
            f"moved per level {s['items_moved_per_level']}, codes used {usage}, recon MSE {s['reconstruction_mse']:.5f}"
        )
    print(f"wrote {args.out} in {result.stats['wall_seconds']:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
