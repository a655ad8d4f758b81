"""Benchmark: trie-constrained beam search on the Instruments catalog, official-size T5 (random weights).

Correctness first (ours == HF generate top-20 lists and scores, ours == the torch reference), then
users/s of every provider, the ratio to HF measured in the same run, a projection for the full test
set (17,112 users x 2 modalities + ensemble), and the FLOP floor (encoder once per user + decoder
steps of the active beams) divided by the matmul rate measured here. Appends to bench/results/beam.json.

HF generate is timed as the official test script runs it (64 users per call) and, for
transparency, also with 8 users per call, which is faster per user on a CPU; ratios to both are
reported ("ratio_to_hf", "ratio_to_fastest_hf"). On a machine with a GPU, HF generate and ours also
run on the GPU, and our search is timed over as many users as the whole test set ("gpu").

    python bench/bench_beam.py    # defaults: 256 users; 64 through HF (+16 at 8 per call); 2 through exact
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from datetime import datetime, timezone

import numpy as np
import torch

from mqlrec.evaluate import ensemble
from mqlrec.generate import beam_search
from mqlrec.generate.ranking import distinct_leaves
from mqlrec.data import read_index
from mqlrec.generate.reference import hf_prefix_allowed_tokens, reference_beam_search
from mqlrec.model.t5 import ModelConfig, build_model
from mqlrec.generate.step import cuda_step_available
from mqlrec.language import Language
from _results import append_json

HERE = os.path.dirname(os.path.abspath(__file__))
TEST_USERS = 17112  # Instruments test set


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=os.path.join(HERE, "..", "..", "shared", "data", "Instruments"),
                   help="folder with Instruments.index_lemb.json and Instruments.index_vitemb.json")
    p.add_argument("--users", type=int, default=256, help="users timed for our search (per provider)")
    p.add_argument("--hf-users", type=int, default=64, help="users run through HF generate (slow)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs of each of our providers (median reported)")
    p.add_argument("--ref-users", type=int, default=8, help="users run through the torch reference search")
    p.add_argument("--exact-users", type=int, default=2, help="users run through exact search (near brute force on a random model)")
    p.add_argument("--batch-size", type=int, default=None, help="users per decoder batch for our search (default: beam_search's own, 32 on CPU)")
    p.add_argument("--hf-batch-size", type=int, default=64,
                   help="users per HF generate call: 64 is the official test script's --test_batch_size")
    p.add_argument("--hf-small-batch", type=int, default=8,
                   help="also time HF with this many users per call (on --hf-small-users users): HF's own best "
                        "setting on a CPU, reported next to the official one (0 = skip)")
    p.add_argument("--hf-small-users", type=int, default=16, help="users of the small-batch HF run")
    p.add_argument("--beams", type=int, default=20, help="beam width")
    p.add_argument("--modality", default="text", choices=["text", "image"], help="catalog/trie to search")
    p.add_argument("--gpu-users", type=int, default=TEST_USERS,
                   help="users timed through our search on the GPU (when present): the whole test set by default")
    p.add_argument("--seed", type=int, default=0, help="seed of the model weights and histories")
    p.add_argument("--out", default=os.path.join(HERE, "results", "beam.json"), help="JSON results file (appended)")
    return p.parse_args()


def load_language(data_dir):
    codes = {m: read_index(os.path.join(data_dir, f"Instruments.{name}.json"))[1]
             for m, name in [("text", "index_lemb"), ("image", "index_vitemb")]}
    return Language(codes, ["seqrec", "seqimage"], n_codes={"text": 256, "image": 256})


def official_model(vocab, seed):
    torch.manual_seed(seed)
    return build_model(ModelConfig(), vocab).eval()


def hf_search(model, ids, mask, trie, W, batch):
    leaves, scores = [], []
    fn = hf_prefix_allowed_tokens(trie)
    for s in range(0, len(ids), batch):
        out = model.generate(input_ids=ids[s : s + batch], attention_mask=mask[s : s + batch], num_beams=W,
                             num_return_sequences=W, max_new_tokens=trie.depth + 1, prefix_allowed_tokens_fn=fn,
                             output_scores=True, return_dict_in_generate=True, length_penalty=1.0,
                             early_stopping=True, do_sample=False)
        n = len(ids[s : s + batch])
        seqs = out.sequences.reshape(n, W, -1)[:, :, 1 : trie.depth + 1].cpu().numpy()
        leaves.append([[trie.walk(x) for x in row] for row in seqs])
        scores.append(out.sequences_scores.reshape(n, W).cpu().numpy())
    return np.concatenate(leaves), np.concatenate(scores)


def against_hf(model, ids, mask, trie, W, batch, item_tokens, sync=lambda: None):
    """HF generate on these users (timed) and ours on the same users: HF's leaves, HF's seconds, how many
    top-W lists are identical and the largest score difference."""
    (hf_leaves, hf_scores), t_hf = timed(lambda: (hf_search(model, ids, mask, trie, W, batch), sync())[0])
    leaves, scores = distinct_leaves(beam_search(model, ids, mask, trie, beam_width=W), trie, item_tokens)
    identical = sum(list(a) == list(b) for a, b in zip(leaves, hf_leaves))
    max_diff = max(float(np.abs(np.array(s) - hs).max()) for s, hs in zip(scores, hf_scores))
    return hf_leaves, t_hf, identical, max_diff


def gpu_run(model, ids, mask, trie, W, lang, args):
    """HF generate and ours on the same GPU: identical lists first, then users/s, and our time for
    --gpu-users users (default: as many as the Instruments test set) measured, not projected."""
    model = model.cuda()
    ic, mc = ids.cuda(), mask.cuda()
    h = args.hf_users
    sync = torch.cuda.synchronize
    hf_search(model, ic[:8], mc[:8], trie, W, 8)  # warm-up
    _, t_hf, identical, max_diff = against_hf(model, ic[:h], mc[:h], trie, W, args.hf_batch_size,
                                              lang.item_tokens(args.modality), sync)
    g = args.gpu_users
    beam_search(model, ic[:256], mc[:256], trie, beam_width=W)  # warm-up
    sync()
    _, t = timed(lambda: (beam_search(model, ic[:g], mc[:g], trie, beam_width=W, batch_size=args.batch_size), sync()))
    out = {"device": torch.cuda.get_device_name(), "step": "cuda" if cuda_step_available() else "torch", "hf_identical_top20_lists": f"{identical}/{h}",
           "hf_max_score_diff": max_diff, "hf_generate_users_per_s": round(h / t_hf, 2), "ours_users_per_s": round(g / t, 1),
           "ratio_to_hf": round((g / t) / (h / t_hf), 1), "users_timed": g,
           "test_set_both_modalities_s": round(2 * TEST_USERS / (g / t), 2)}
    print(json.dumps({"gpu": out}))
    return out


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def flops_per_user(cfg, S, W, L, V):
    """Multiply-adds x 2 of one user's search: encoder once, cross K/V once, decoder for active beams."""
    D, inner, F, n_enc, n_dec = cfg.d_model, cfg.num_heads * cfg.d_kv, cfg.d_ff, cfg.num_layers, cfg.num_decoder_layers
    enc_layer = 4 * S * D * inner + 2 * S * S * inner + 2 * S * D * F
    enc = n_enc * enc_layer + n_dec * 2 * S * D * inner  # + cross-attention K/V, once per user
    dec = 0
    active = [1] + [W] * (L - 1) + [W]  # step 0: one beam; L-1 more code steps; the eos step
    for t, a in enumerate(active):
        per_token = n_dec * (4 * D * inner + 2 * (t + 1) * inner + 2 * D * inner + 2 * S * inner + 2 * D * F) + D * V
        dec += a * per_token
    return 2 * (enc + dec)


def matmul_rate(m=2560, k=128, n=1024, reps=20):
    a, b = torch.randn(m, k), torch.randn(k, n)
    for _ in range(3):
        a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * m * k * n * reps / (time.perf_counter() - t)


def main():
    args = parse_args()
    lang = load_language(args.data_dir)
    model = official_model(lang.vocab_size, args.seed)
    trie = lang.trie(args.modality)
    task = "seqrec" if args.modality == "text" else "seqimage"
    rng = np.random.default_rng(args.seed)
    n = max(args.users, args.hf_users, args.ref_users, args.exact_users, args.gpu_users if torch.cuda.is_available() else 0)
    tokens = lang.item_tokens(args.modality)
    hist = tokens[rng.integers(0, lang.n_items, (n, 20))].reshape(n, -1)
    ids = torch.as_tensor(np.concatenate([np.full((n, 1), lang.task_id(task)), hist, np.ones((n, 1), np.int64)], 1))
    mask = torch.ones_like(ids)
    W, L, S, V = args.beams, trie.depth, ids.shape[1], lang.vocab_size
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": f"cpu: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads",
        "torch": torch.__version__, "modality": args.modality, "beams": W, "source_len": S, "catalog": lang.n_items,
        "cuda": torch.cuda.is_available(), "hf_batch_size": args.hf_batch_size,
    }
    print(json.dumps(result))

    # correctness first
    h = args.hf_users
    hf_leaves, t_hf, identical, max_diff = against_hf(model, ids[:h], mask[:h], trie, W, args.hf_batch_size,
                                                      lang.item_tokens(args.modality))
    result["hf_identical_top20_lists"] = f"{identical}/{h}"
    result["hf_max_score_diff"] = max_diff
    r = args.ref_users
    ref, t_ref = timed(lambda: reference_beam_search(model, ids[:r], mask[:r], trie, beam_width=W))
    ours_ref = beam_search(model, ids[:r], mask[:r], trie, beam_width=W, step="torch")
    result["reference_identical_rankings"] = f"{int((ref.items == ours_ref.items).all(1).sum())}/{r}"
    print(json.dumps({k: result[k] for k in ("hf_identical_top20_lists", "hf_max_score_diff", "reference_identical_rankings")}))
    if identical != h:
        raise SystemExit("ours differs from HF generate: refusing to report speed")

    rates = {"hf_generate": h / t_hf, "torch_reference": r / t_ref}
    if args.hf_small_batch:
        k = args.hf_small_users
        (small_leaves, _), t_small = timed(lambda: hf_search(model, ids[:k], mask[:k], trie, W, args.hf_small_batch))
        if [list(x) for x in small_leaves] != [list(x) for x in hf_leaves[:k]]:
            raise SystemExit("HF generate gives different lists with another batch size: refusing to report speed")
        rates[f"hf_generate_batch{args.hf_small_batch}"] = k / t_small
    u = args.users
    providers = {"ours_cpu_torch_step": dict(step="torch"), "ours_cpu_cpp_step": dict(step="cpp"),
                 "ours_cpu_cpp_step_level": dict(step="cpp", normalise="level")}
    times = {name: [] for name in providers}
    for name, kw in providers.items():
        beam_search(model, ids[:8], mask[:8], trie, beam_width=W, batch_size=args.batch_size, **kw)  # warm-up
    for _ in range(args.repeats):  # interleaved, so a slow spell of the machine hits every provider
        for name, kw in providers.items():
            rk, t = timed(lambda: beam_search(model, ids[:u], mask[:u], trie, beam_width=W, batch_size=args.batch_size, **kw))
            times[name].append(t)
            if name == "ours_cpu_cpp_step":
                ours_rank = rk
    for name, ts in times.items():
        rates[name] = u / statistics.median(ts)
    if torch.cuda.is_available():
        result["gpu"] = gpu_run(model, ids, mask, trie, W, lang, args)
        model = model.cpu()
    e = args.exact_users
    ex, t_ex = timed(lambda: beam_search(model, ids[:e], mask[:e], trie, beam_width=W, search="exact"))
    rates["exact"] = e / t_ex
    differs = sum(list(ex.items[i, :10]) != list(ours_rank.items[i, :10]) for i in range(e))
    result["beam_top10_differs_from_exact"] = f"{differs}/{e}"
    ens, t_ens = timed(lambda: ensemble(ours_rank, ours_rank))
    result["ensemble_users_per_s"] = u / t_ens

    best = max((k for k in rates if k.startswith("ours_cpu") and not k.endswith("level")), key=rates.get)
    result["users_per_s"] = {k: round(v, 2) for k, v in rates.items()}
    result["ratio_to_hf"] = {k: round(v / rates["hf_generate"], 2) for k, v in rates.items()}
    hf_best = max(v for k, v in rates.items() if k.startswith("hf_generate"))
    result["ratio_to_fastest_hf"] = {k: round(v / hf_best, 2) for k, v in rates.items()}
    full_set = 2 * TEST_USERS / rates[best] + TEST_USERS / result["ensemble_users_per_s"]
    result["projected_test_set_s"] = {"ours": round(full_set, 1),
                                      "hf_generate": round(2 * TEST_USERS / rates["hf_generate"], 1)}
    flops = flops_per_user(model.config, S, W, L, V)
    rate = matmul_rate()
    result["floor"] = {"gflop_per_user": round(flops / 1e9, 3), "matmul_gflops": round(rate / 1e9, 1),
                       "floor_users_per_s": round(rate / flops, 1),
                       "ours_time_over_floor": round((rate / flops) / rates[best], 2), "best_provider": best}
    print(json.dumps(result, indent=1))
    append_json(args.out, result)


if __name__ == "__main__":
    main()
