"""Tokenizer measurements through the CLI (python -m mqlrec.tokenize), results appended as JSON.

  instruments : the official configuration on Instruments' SASRec embeddings -> collision rate
                before / after reallocation, time  (bench/results/tokenize_instruments.json)
  macrec      : synthetic default dataset, --method rqvae vs --method macrec, collision rate before
                reallocation per modality over several seeds  (bench/results/tokenize_macrec_vs_rqvae.json)

  python bench/bench_tokenize.py instruments [--epochs 40]
  python bench/bench_tokenize.py macrec [--seeds 0 1 2] [--epochs 100] [--codebook-size 16 --levels 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from _results import append_json

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "data", "Instruments"))


def run_cli(args: list[str]) -> dict:
    from mqlrec.tokenize import main

    with tempfile.TemporaryDirectory() as out:
        t = time.perf_counter()
        if main([*args, "--out", out]) != 0:
            raise SystemExit(f"tokenize failed: {args}")
        wall = time.perf_counter() - t
        (stats_file,) = [f for f in os.listdir(out) if f.endswith(".tokenize_stats.json")]
        with open(os.path.join(out, stats_file)) as f:
            stats = json.load(f)
    stats["cli_seconds"] = wall
    return stats


def summary(stats: dict) -> dict:
    return {
        m: {k: s[k] for k in ("items", "collisions_before", "collision_rate_before", "collisions_after",
                               "collision_rate_after", "items_moved_per_level", "reconstruction_mse", "best_epoch",
                               "reallocation_backend", "reallocation_seconds")}
        | {"codes_used_per_level": [u["codes_used"] for u in s["usage_before"]]}
        for m, s in stats["modalities"].items()
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["instruments", "macrec"])
    p.add_argument("--epochs", type=int, default=None, help="training epochs (instruments: 40, macrec: 100)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--hidden", default=None, help="encoder hidden sizes (instruments: official; macrec: 256,128,64)")
    p.add_argument("--codebook-size", type=int, default=16, help="macrec comparison: K (small so collisions show)")
    p.add_argument("--levels", type=int, default=3, help="macrec comparison: L")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--stats", default=None, help="instruments: record an existing CLI run's X.tokenize_stats.json instead of running")
    p.add_argument("--command", default="", help="with --stats: the command that produced it")
    args = p.parse_args()

    import torch

    env = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "device": f"CPU {platform.machine()}, {os.cpu_count()} cores",
           "torch": torch.__version__, "python": platform.python_version()}
    common = ["--no-progress", "--threads", str(args.threads)]
    if args.what == "instruments":
        epochs = args.epochs or 40
        cli = ["--data", DATA, "--emb", f"text={os.path.join(DATA, 'Instruments.emb-sasrec32-lcrec.npy')}",
               "--epochs", str(epochs), *common] + (["--hidden", args.hidden] if args.hidden else [])
        if args.stats:
            with open(args.stats) as f:
                stats = json.load(f)
            stats["cli_seconds"] = stats["wall_seconds"]
            cli = args.command.split()
        else:
            stats = run_cli(cli)
        record = {**env, "command": "python -m mqlrec.tokenize " + " ".join(cli), "wall_seconds": stats["cli_seconds"],
                  "train_seconds": stats["train_seconds"], "modalities": summary(stats)}
        append_json(os.path.join(HERE, "results", "tokenize_instruments.json"), record)
        print(json.dumps(record["modalities"], indent=1))
        return
    epochs = args.epochs or 100
    con_levels = ",".join(str(l) for l in range(max(0, args.levels - 2), args.levels))  # the last two levels
    rows = []
    for seed in args.seeds:
        for method in ("rqvae", "macrec"):
            cli = ["--method", method, "--seed", str(seed), "--epochs", str(epochs), "--hidden", args.hidden or "256,128,64",
                   "--codebook-size", str(args.codebook_size), "--levels", str(args.levels), "--con-levels", con_levels,
                   "--clusters", "64", *common]
            stats = run_cli(cli)
            evaluated = [h for h in stats["history"] if "collisions" in h]
            rows.append({"seed": seed, "method": method, "command": "python -m mqlrec.tokenize " + " ".join(cli),
                         "seconds": stats["cli_seconds"], "modalities": summary(stats),
                         # the kept state differs by method (MACRec selects on the sum over modalities), so
                         # also compare the same epoch: collision rate at the last epoch, and the whole curve
                         "final_epoch_collision_rate": {m: c / stats["items"] for m, c in evaluated[-1]["collisions"].items()},
                         "collisions_by_epoch": {h["epoch"]: h["collisions"] for h in evaluated}})
            rates = {m: s["collision_rate_before"] for m, s in rows[-1]["modalities"].items()}
            print(f"seed {seed} {method:6s} collision rate before reallocation: {rates}, at the last epoch: "
                  f"{rows[-1]['final_epoch_collision_rate']}")
    mean, mean_final = {}, {}
    for method in ("rqvae", "macrec"):
        for m in ("text", "image"):
            vals = [r["modalities"][m]["collision_rate_before"] for r in rows if r["method"] == method]
            mean[f"{method}_{m}"] = sum(vals) / len(vals)
            vals = [r["final_epoch_collision_rate"][m] for r in rows if r["method"] == method]
            mean_final[f"{method}_{m}"] = sum(vals) / len(vals)
    print("mean collision rate before reallocation (kept state):", mean)
    print("mean collision rate at the last epoch:", mean_final)
    append_json(os.path.join(HERE, "results", "tokenize_macrec_vs_rqvae.json"),
           {**env, "dataset": "synthetic default (500 items)", "epochs": epochs, "codebook_size": args.codebook_size,
            "levels": args.levels, "mean_collision_rate_before": mean, "mean_final_epoch_collision_rate": mean_final,
            "runs": rows})


if __name__ == "__main__":
    main()
