"""`python -m mqlrec.data`: stats, synthetic, prepare-amazon, download; clean one-line errors."""

import gzip
import json
import os
import subprocess
import sys

import pytest

from conftest import SHARED_DATA
from mqlrec.data import load_dataset, load_embedding
from mqlrec.data.__main__ import build_parser, main
from test_data_download import DIGEST, PAYLOAD, server  # noqa: F401 (loopback server fixture)

needs_shared = pytest.mark.skipif(not os.path.isdir(SHARED_DATA), reason=f"shared datasets not found at {SHARED_DATA}")

TABLE_1 = {"Instruments": (17112, 6250, 136226), "Arts": (22171, 9416, 174079), "Games": (42259, 13839, 373514)}


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "mqlrec.data", *args], capture_output=True, text=True, timeout=120)


@needs_shared
@pytest.mark.parametrize("name", sorted(TABLE_1))
def test_stats_json_equals_table_1(name, capsys):
    assert main(["stats", os.path.join(SHARED_DATA, name), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    users, items, inters = TABLE_1[name]
    assert (stats["users"], stats["items"], stats["interactions"]) == TABLE_1[name]
    assert stats["avg_length"] == pytest.approx(inters / users)
    assert stats["sparsity"] == pytest.approx(1 - inters / (users * items))


@needs_shared
def test_stats_table_in_a_real_process():
    result = _cli("stats", os.path.join(SHARED_DATA, "Instruments"))
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(None, 1) for line in result.stdout.splitlines())
    assert lines["users"] == "17112" and lines["items"] == "6250" and lines["interactions"] == "136226"
    assert lines["avg_length"] == "7.96"


def test_errors_are_one_line_without_traceback(tmp_path):
    bad = tmp_path / "Bad"
    bad.mkdir()
    (bad / "Bad.inter.json").write_text('{"0": [1, 2,, 3]}')
    result = _cli("stats", str(bad))
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert "Bad.inter.json: malformed JSON at line 1" in result.stderr


def test_synthetic_writes_deterministic_folder(tmp_path, capsys):
    for run in ("a", "b"):
        assert main(["synthetic", "--out", str(tmp_path / run / "Syn"), "--seed", "4", "--n-items", "90",
                     "--n-users", "120"]) == 0
    files = sorted(os.listdir(tmp_path / "a" / "Syn"))
    assert files == sorted(["Syn.inter.json", "Syn.item2id", "Syn.user2id", "Syn.item.json", "Syn.train.inter",
                            "Syn.valid.inter", "Syn.test.inter", "Syn.emb-text.npy", "Syn.emb-image.npy"])
    for f in files:  # same seed, same bytes
        assert (tmp_path / "a" / "Syn" / f).read_bytes() == (tmp_path / "b" / "Syn" / f).read_bytes()
    ds = load_dataset(str(tmp_path / "a" / "Syn"))
    assert (ds.n_items, ds.n_users) == (90, 120)
    assert load_embedding(str(tmp_path / "a" / "Syn" / "Syn.emb-image.npy"), 90).shape == (90, 48)
    assert "wrote" in capsys.readouterr().out


def _gz(path, records):
    with gzip.open(path, "wt") as f:
        f.write("\n".join(json.dumps(r) for r in records) + "\n")
    return str(path)


def test_prepare_amazon_and_failure_leaves_no_output(tmp_path, capsys):
    reviews = [{"reviewerID": f"u{u}", "asin": f"i{(u * 3 + j) % 7}", "unixReviewTime": 10 * j}
               for u in range(12) for j in range(6)]
    r = _gz(tmp_path / "Toy_5.json.gz", reviews)
    m = _gz(tmp_path / "meta_Toy.json.gz", [{"asin": f"i{j}", "title": f"thing {j}"} for j in range(7)])
    out = tmp_path / "out" / "Toy"
    assert main(["prepare-amazon", "--reviews", r, "--meta", m, "--out", str(out), "--k", "5"]) == 0
    ds = load_dataset(str(out))
    assert ds.n_users == 12 and ds.n_items == 7 and ds.n_interactions == 72
    assert ds.item_text[0]["title"].startswith("thing")
    capsys.readouterr()
    # a malformed metadata file: non-zero exit, message names file and line, nothing written
    bad_meta = tmp_path / "meta_bad.json.gz"
    with gzip.open(bad_meta, "wt") as f:
        f.write('{"asin": "i0", "title": "x"}\n{"asin": oops}\n')
    out2 = tmp_path / "out" / "Toy2"
    assert main(["prepare-amazon", "--reviews", r, "--meta", str(bad_meta), "--out", str(out2)]) == 1
    err = capsys.readouterr().err
    assert "meta_bad.json.gz: line 2: malformed JSON" in err and err.count("\n") == 1
    assert not out2.exists() and sorted(os.listdir(tmp_path / "out")) == ["Toy"]


def test_download_command_against_loopback(server, tmp_path, capsys):
    base, _ = server
    url = f"{base}/file.bin"
    assert main(["download", "--url", url, "--out", str(tmp_path), "--sha256", DIGEST, "--timeout", "5"]) == 0
    assert (tmp_path / "file.bin").read_bytes() == PAYLOAD
    assert DIGEST in capsys.readouterr().out
    assert main(["download", "--url", url, "--out", str(tmp_path / "x.bin"), "--sha256", "2" * 64,
                 "--timeout", "5"]) == 1
    assert "sha256 mismatch" in capsys.readouterr().err and not (tmp_path / "x.bin").exists()
    assert main(["download", "--out", str(tmp_path)]) == 1
    assert "exactly one of --dataset NAME or --url URL" in capsys.readouterr().err


def test_every_option_is_documented():
    parser = build_parser()
    for action in parser._subparsers._group_actions[0].choices.values():
        for option in action._actions:
            if option.dest != "help":
                assert option.help, f"{action.prog} {option.dest} has no help text"
