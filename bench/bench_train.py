"""Training and evaluation throughput of the generative recommender on this machine.

Measures, each after a correctness check:
1. sample building: vectorised flat arrays (mqlrec.tasks) vs the plain per-sample Python construction;
2. training: samples/s of forward + backward + AdamW, padding every batch to the global maximum
   length (the baseline) vs trimming each random batch to its longest source vs length-bucketed
   batches (what the trainer does);
3. evaluation: users/s of trie-constrained beam search per modality (+ the ensemble re-ranking).

Results are appended to bench/results/train.json.

    python bench/bench_train.py                      # Instruments with the official IDs when available
    python bench/bench_train.py --synthetic --model small
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np
import torch

from mqlrec.language import EOS_ID, Language
from mqlrec.model import GenerativeRecommender, ModelConfig, build_model
from mqlrec.tasks import ALL_TASKS, TASKS, SequenceTable, build_samples
from mqlrec.train.batches import epoch_batches, to_batch
from mqlrec.train.loop import FitConfig, make_optimizer
from _results import append_json

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, "..", "..", "shared", "data", "Instruments")
MODELS = {
    "official": ModelConfig(),
    "small": ModelConfig(d_model=64, d_ff=256, d_kv=16, num_heads=4, num_layers=2, num_decoder_layers=2),
}


def load(args):
    if not args.synthetic and os.path.isdir(SHARED):
        from mqlrec.data import load_dataset, read_index

        ds = load_dataset(SHARED)
        codes = {}
        for m, f in (("text", "Instruments.index_lemb.json"), ("image", "Instruments.index_vitemb.json")):
            codes[m] = read_index(os.path.join(SHARED, f), ds.n_items)[1]
        return ds, Language(codes, ALL_TASKS, n_codes={"text": 256, "image": 256})
    from mqlrec.data.synthetic import make_synthetic

    ds = make_synthetic()
    rng = np.random.default_rng(0)
    codes = {}
    for m in ("text", "image"):
        ids = rng.choice(32**3, ds.n_items, replace=False)
        codes[m] = np.stack([(ids // 32**l) % 32 for l in range(3)], 1)
    return ds, Language(codes, ALL_TASKS, n_codes={"text": 32, "image": 32})


def python_samples(sequences, lang, tasks, max_history=20):
    """The per-sample Python baseline (the official data code's loops)."""
    rows = []
    for name in tasks:
        spec = TASKS[name]
        src_tok, tgt_tok = lang.item_tokens(spec.source), lang.item_tokens(spec.target)
        for seq in sequences:
            items = [int(x) for x in seq[:-2]]
            for i in range(1, len(items)):
                hist = items[:i][-max_history:]
                src = [lang.task_id(name)] + [int(t) for h in hist for t in src_tok[h]] + [EOS_ID]
                rows.append((src, [int(t) for t in tgt_tok[items[i]]] + [EOS_ID]))
    return rows


def bench_samples(ds, lang, tasks):
    t0 = time.perf_counter()
    fast = build_samples(ds.sequences, lang, tasks)
    t_fast = time.perf_counter() - t0
    t0 = time.perf_counter()
    slow = python_samples(ds.sequences, lang, tasks)
    t_slow = time.perf_counter() - t0
    assert len(slow) == len(fast)
    for i in np.random.default_rng(0).choice(len(slow), 200, replace=False):
        assert fast.src[i, : fast.src_len[i]].tolist() == slow[i][0]
    return {"samples": len(fast), "vectorised_s": t_fast, "python_s": t_slow, "speedup": t_slow / t_fast}, fast


def bench_training(samples, lang, cfg, batch_size, n_batches, seed=0):
    torch.manual_seed(seed)
    t5 = build_model(cfg, lang.vocab_size)
    rec = GenerativeRecommender(t5)
    opt, sched = make_optimizer(rec, FitConfig(epochs=1, lr=5e-4), 1000)
    batches = epoch_batches(len(samples), batch_size, 0, seed)[: n_batches + 1]
    bucketed = epoch_batches(len(samples), batch_size, 0, seed, lengths=samples.src_len)[: n_batches + 1]
    full_width = samples.src.shape[1]

    def padded_full(idx):
        b = to_batch(samples, idx, "cpu")
        pad = full_width - b["input_ids"].shape[1]
        b["input_ids"] = torch.nn.functional.pad(b["input_ids"], (0, pad))
        b["attention_mask"] = torch.nn.functional.pad(b["attention_mask"], (0, pad))
        return b

    # correctness: trimming the padding does not change the loss
    rec.eval()
    with torch.no_grad():
        a = rec(**to_batch(samples, batches[0], "cpu"))[0]
        b = rec(**padded_full(batches[0]))[0]
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    rec.train()
    out = {}
    trimmed = lambda i: to_batch(samples, i, "cpu")  # noqa: E731
    variants = (("full_padding", padded_full, batches), ("trimmed", trimmed, batches), ("bucketed", trimmed, bucketed))
    for name, make, order in variants:
        step(rec, opt, sched, make(order[0]))  # warm-up
        n, t0 = 0, time.perf_counter()
        for idx in order[1:]:
            step(rec, opt, sched, make(idx))
            n += len(idx)
        out[f"{name}_samples_per_s"] = n / (time.perf_counter() - t0)
    out["speedup_trimmed"] = out["trimmed_samples_per_s"] / out["full_padding_samples_per_s"]
    out["speedup_bucketed"] = out["bucketed_samples_per_s"] / out["full_padding_samples_per_s"]
    return out, t5


def step(rec, opt, sched, batch):
    loss, _ = rec(**batch)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()
    return loss.detach().item()


def bench_eval(t5, ds, lang, n_users, beam_width, batch_size):
    from mqlrec.evaluate import ensemble
    from mqlrec.train.evaluation import rank_users

    table = SequenceTable(ds.sequences, ds.n_items)
    users = table.positions("test").user[:n_users]
    out, rankings = {}, {}
    for m in lang.modalities:
        rank_users(t5, lang, table, "test", users[:2], m, beam_width, "cpu")  # warm-up
        t0 = time.perf_counter()
        parts = [rank_users(t5, lang, table, "test", users[i : i + batch_size], m, beam_width, "cpu")[0]
                 for i in range(0, len(users), batch_size)]
        out[f"{m}_users_per_s"] = len(users) / (time.perf_counter() - t0)
        rankings[m] = parts
        # correctness: every listed item is a real item, each once per user
        for r in parts:
            for row in r.items:
                row = row[row >= 0]
                assert len(set(row.tolist())) == len(row) and row.max() < lang.n_items
    if len(rankings) == 2:
        t0 = time.perf_counter()
        for a, b in zip(rankings["text"], rankings["image"]):
            ensemble(a, b)
        out["ensemble_users_per_s"] = len(users) / (time.perf_counter() - t0)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--synthetic", action="store_true", help="use the synthetic dataset even when Instruments is available")
    p.add_argument("--model", choices=sorted(MODELS), default="official", help="T5 size")
    p.add_argument("--batch-size", type=int, default=256, help="training batch size")
    p.add_argument("--batches", type=int, default=4, help="timed training batches per variant")
    p.add_argument("--eval-users", type=int, default=128, help="users timed in the beam search")
    p.add_argument("--eval-batch-size", type=int, default=64, help="users per beam-search batch")
    p.add_argument("--beam-width", type=int, default=20, help="beams per modality")
    p.add_argument("--out", default=os.path.join(HERE, "results", "train.json"), help="JSON list to append to")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    ds, lang = load(args)
    tasks = ["seqrec", "seqimage", "seqitem2image", "seqimage2item"]
    result = {
        "bench": "train",
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
        "device": f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()})",
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "dataset": ds.name,
        "model": args.model,
        "batch_size": args.batch_size,
        "beam_width": args.beam_width,
    }
    result["sample_building"], samples = bench_samples(ds, lang, tasks)
    print("sample building:", result["sample_building"])
    result["training"], t5 = bench_training(samples, lang, MODELS[args.model], args.batch_size, args.batches)
    print("training:", result["training"])
    t5.eval()
    result["evaluation"] = bench_eval(t5, ds, lang, args.eval_users, args.beam_width, args.eval_batch_size)
    print("evaluation:", result["evaluation"])
    append_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
