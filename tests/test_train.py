"""Training CLI: DDP-sharded evaluation == 1-process evaluation, exact resume, bad inputs, sharding."""

import json
import os
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
from safetensors.numpy import load_file

from mqlrec.data import write_mqlrec
from mqlrec.data.synthetic import make_synthetic
from mqlrec.tasks import SequenceTable
from mqlrec.train.baselines import Popularity
from mqlrec.train.batches import epoch_batches
from mqlrec.train.cli import main

TINY = ["--d-model", "32", "--d-ff", "64", "--d-kv", "8", "--num-heads", "2", "--num-layers", "1",
        "--batch-size", "64", "--beam-width", "10", "--eval-batch-size", "8", "--codebook-size", "16"]


def unique_codes(rng, n, levels, k):
    ids = rng.choice(k**levels, n, replace=False)
    return np.stack([(ids // k**level) % k for level in range(levels)], 1)


def make_data_dir(path, n_users, n_items, seed=0, levels=3):
    ds = make_synthetic(seed=seed, n_items=n_items, n_users=n_users)
    rng = np.random.default_rng(seed)
    ds.codes = {"text": unique_codes(rng, n_items, levels, 16), "image": unique_codes(rng, n_items, levels, 16)}
    ds.embeddings = {}
    write_mqlrec(ds, str(path))
    return ds


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("d") / "syn"
    make_data_dir(path, n_users=101, n_items=60)  # odd user count: shards of unequal size
    return str(path)


def run_cli(*argv):
    return main([str(a) for a in argv])


def test_epoch_batches_cover_every_sample_once_per_rank_set():
    rng = np.random.default_rng(0)
    for (n, bs, world), bucket in zip([(1, 4, 1), (17, 4, 2), (103, 10, 3), (64, 64, 2), (1001, 7, 2)], [0, 1, 0, 1, 1]):
        lengths = rng.integers(3, 60, n) if bucket else None
        per_rank = [epoch_batches(n, bs, 3, 1, r, world, lengths, bucket_batches=5) for r in range(world)]
        assert len({len(b) for b in per_rank}) == 1  # same number of steps on every rank
        seen = np.concatenate([np.concatenate(b) for b in per_rank])
        assert set(seen.tolist()) == set(range(n)) and len(seen) == -(-n // world) * world
        again = epoch_batches(n, bs, 3, 1, 0, world, lengths, bucket_batches=5)
        assert all(np.array_equal(a, b) for a, b in zip(again, per_rank[0]))
        if bucket and n > 100:  # bucketed batches hold similar lengths: much less padding than random batches
            spread = np.mean([np.ptp(lengths[b]) for b in per_rank[0]])
            assert spread < 0.5 * np.mean([np.ptp(lengths[b]) for b in epoch_batches(n, bs, 3, 1, 0, world)])


def test_popularity_counts_training_interactions_only():
    rng = np.random.default_rng(0)
    seqs = [rng.integers(0, 12, rng.integers(2, 9)) for _ in range(40)]
    counts = Counter(int(i) for s in seqs for i in s[:-2])
    want = sorted(range(12), key=lambda i: (-counts[i], i))[:5]
    ranking = Popularity(SequenceTable(seqs, 12), k=5)(np.arange(3))
    assert ranking.items.tolist() == [want] * 3
    assert ranking.scores[0].tolist() == [counts[i] for i in want]


def test_ddp_sharded_evaluation_equals_single_process(data_dir, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "mqlrec.train",
           "--data", data_dir, "--epochs", "1", "--valid-metric", "loss", "--recipe", "macrec", "--out", str(out), *TINY]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = json.load(open(out / "results.json"))
    epoch = [json.loads(line) for line in open(out / "metrics.jsonl") if '"train"' in line][0]
    assert epoch["implicit_loss"] > 0  # --recipe macrec: the implicit alignment ran under DDP
    assert ddp["n_users"] == 101
    single_out = tmp_path / "single"
    assert run_cli("--data", data_dir, "--eval-checkpoint", out / "best", "--out", single_out, *TINY) == 0
    single = json.load(open(single_out / "results.json"))
    assert single == ddp  # every user counted exactly once, same numbers to the last bit
    assert set(single) >= {"text", "image", "ensemble", "popularity"}


def test_resume_continues_exactly(data_dir, tmp_path):
    common = ["--data", data_dir, "--epochs", "2", "--valid-metric", "loss", "--eval-users", "9", *TINY]
    assert run_cli(*common, "--out", tmp_path / "full") == 0
    assert run_cli(*common, "--out", tmp_path / "cut", "--stop-after", "1") == 0
    assert not (tmp_path / "cut" / "results.json").exists()
    assert run_cli(*common, "--out", tmp_path / "cut", "--resume") == 0
    a = load_file(str(tmp_path / "full" / "last" / "model.safetensors"))
    b = load_file(str(tmp_path / "cut" / "last" / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert json.load(open(tmp_path / "full" / "results.json")) == json.load(open(tmp_path / "cut" / "results.json"))


def test_bad_inputs(data_dir, tmp_path, capsys):
    # a checkpoint to misuse
    out = tmp_path / "run"
    assert run_cli("--data", data_dir, "--epochs", "1", "--valid-metric", "loss", "--eval-users", "5", "--out", out, *TINY) == 0
    capsys.readouterr()

    other = tmp_path / "other"
    make_data_dir(other, n_users=50, n_items=60, seed=1)
    assert run_cli("--data", other, "--eval-checkpoint", out / "best", *TINY) == 2
    assert "trained on dataset" in capsys.readouterr().err

    # IDs with a different number of levels than the checkpoint's
    from mqlrec.data import write_index

    deeper = tmp_path / "deeper.json"
    write_index(str(deeper), "text", unique_codes(np.random.default_rng(0), 60, 4, 16))
    assert run_cli("--data", data_dir, "--index", f"text={deeper}", "--resume", "--epochs", "2", "--out", out, *TINY) == 2
    assert "shape" in capsys.readouterr().err

    assert run_cli("--data", data_dir, "--resume", "--out", tmp_path / "nothing", *TINY) == 2
    assert "no such checkpoint" in capsys.readouterr().err
    assert run_cli("--data", data_dir, "--index", "txt=/x.json", *TINY) == 2
    assert "--index" in capsys.readouterr().err
    assert run_cli("--data", data_dir, "--tasks", "seqrec", "nope", "--out", tmp_path / "t", *TINY) == 2
    assert "unknown task" in capsys.readouterr().err
    assert run_cli("--data", str(tmp_path / "missing"), *TINY) == 2
    assert "not found" in capsys.readouterr().err


def test_end_to_end_synthetic_beats_popularity(tmp_path):
    """Every stage (tokenize → train → test) from the synthetic default, reduced; the model must beat popularity."""
    out = tmp_path / "e2e"
    assert run_cli("--synthetic-users", "1000", "--synthetic-items", "100", "--tokenizer-epochs", "6",
                   "--tasks", "seqrec", "seqimage", "--epochs", "8", "--valid-users", "100", "--eval-batch-size", "100",
                   "--d-model", "48", "--d-ff", "128", "--d-kv", "12", "--num-heads", "4", "--num-layers", "1",
                   "--batch-size", "128", "--beam-width", "10", "--out", out) == 0
    results = json.load(open(out / "results.json"))
    assert results["n_users"] == 1000
    assert os.path.exists(out / "synthetic.index_text.json") and os.path.exists(out / "synthetic.index_image.json")
    pop = results["popularity"]["NDCG@10"]
    assert results["ensemble"]["NDCG@10"] > pop, results
    assert max(results["text"]["NDCG@10"], results["image"]["NDCG@10"]) > pop, results


def test_pretrain_on_source_domains_then_finetune(data_dir, tmp_path, capsys):
    source = tmp_path / "src"
    make_data_dir(source, n_users=40, n_items=70, seed=3)  # other catalog, same ID shape (L=3, K=16)
    out = tmp_path / "pt"
    assert run_cli("--data", data_dir, "--pretrain", source, "--pretrain-epochs", "1", "--epochs", "1",
                   "--valid-metric", "loss", "--eval-users", "5", "--out", out, *TINY) == 0
    stages = [json.loads(line)["stage"] for line in open(out / "metrics.jsonl")]
    assert stages.index("pretrain") < stages.index("train") < stages.index("test")
    capsys.readouterr()
    deeper = tmp_path / "deep"
    make_data_dir(deeper, n_users=40, n_items=70, seed=3, levels=4)
    assert run_cli("--data", data_dir, "--pretrain", deeper, "--epochs", "1", "--out", tmp_path / "bad", *TINY) == 2
    assert "source IDs have shape" in capsys.readouterr().err


def test_single_modality_run(data_dir, tmp_path):
    out = tmp_path / "text"
    assert run_cli("--data", data_dir, "--modalities", "text", "--epochs", "1", "--valid-users", "11",
                   "--eval-users", "13", "--out", out, *TINY) == 0
    results = json.load(open(out / "results.json"))
    assert set(results) == {"text", "popularity", "n_users"} and results["n_users"] == 13
    meta = json.load(open(out / "best" / "mqlrec.json"))
    assert meta["modalities"] == ["text"] and meta["tasks"] == ["seqrec"]
