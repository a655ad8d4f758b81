"""recommend(): same items as the evaluation's beam search for that history; clear errors on bad input."""

import json

import numpy as np
import pytest

import mqlrec
from mqlrec.recommend import main as recommend_main
from mqlrec.tasks import SequenceTable
from mqlrec.train.checkpoint import load_checkpoint
from mqlrec.train.cli import main as train_main
from mqlrec.train.evaluation import rank_users

from test_train import TINY, make_data_dir


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("rec")
    ds = make_data_dir(root / "syn", n_users=41, n_items=60)
    out = root / "run"
    assert train_main(["--data", str(root / "syn"), "--epochs", "1", "--valid-metric", "loss", "--eval-users", "3",
                       "--out", str(out), *TINY]) == 0
    return ds, str(out / "best")


@pytest.mark.parametrize("modality", ["text", "image", "ensemble"])
def test_recommend_matches_evaluation_ranking(trained, modality):
    ds, ckpt_dir = trained
    ckpt = load_checkpoint(ckpt_dir)
    table = SequenceTable(ds.sequences, ds.n_items)
    users = np.array([0, 7, 40])
    for u in users:
        history = ds.sequences[u][:-1]
        recs = mqlrec.recommend(ckpt_dir, history, k=5, modality=modality, beam_width=10)
        if modality == "ensemble":
            from mqlrec.evaluate import ensemble

            r_text, _ = rank_users(ckpt.model, ckpt.language, table, "test", np.array([u]), "text", 10, "cpu")
            r_image, _ = rank_users(ckpt.model, ckpt.language, table, "test", np.array([u]), "image", 10, "cpu")
            ranking = ensemble(r_text, r_image)
        else:
            ranking, _ = rank_users(ckpt.model, ckpt.language, table, "test", np.array([u]), modality, 10, "cpu")
        assert recs.items == ranking.items[0][:5].tolist()
        assert len(set(recs.items)) == 5
        assert recs.titles == [ds.item_text[i]["title"] for i in recs.items]


def test_recommend_bad_inputs_and_edges(trained):
    ds, ckpt_dir = trained
    with pytest.raises(ValueError, match="unknown item ids"):
        mqlrec.recommend(ckpt_dir, [1, 2, 60])
    with pytest.raises(ValueError, match="at least one"):
        mqlrec.recommend(ckpt_dir, [])
    with pytest.raises(ValueError, match="larger than the catalog"):
        mqlrec.recommend(ckpt_dir, [1, 2], k=61)
    with pytest.raises(ValueError, match="modality"):
        mqlrec.recommend(ckpt_dir, [1, 2], modality="audio")
    with pytest.raises(ValueError, match="beam_width"):
        mqlrec.recommend(ckpt_dir, [1, 2], k=10, beam_width=5)
    # a beam wider than the catalog is fine: every item is reachable, each listed once
    recs = mqlrec.recommend(ckpt_dir, [1, 2], k=60, modality="text", beam_width=200)
    assert sorted(recs.items) == list(range(60))
    # long histories use the last max_history items only
    long = np.arange(60).tolist() * 2
    assert mqlrec.recommend(ckpt_dir, long, k=3).items == mqlrec.recommend(ckpt_dir, long[-20:], k=3).items


def test_recommend_cli(trained, capsys):
    _, ckpt_dir = trained
    assert recommend_main(["--checkpoint", ckpt_dir, "--history", "3", "4", "5", "--k", "4", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["rank"] for r in rows] == [1, 2, 3, 4] and all("title" in r for r in rows)
    assert [r["item"] for r in rows] == mqlrec.recommend(ckpt_dir, [3, 4, 5], k=4).items
    assert recommend_main(["--checkpoint", ckpt_dir, "--history", "3", "x"]) == 2
    assert "integer" in capsys.readouterr().err
    assert recommend_main(["--checkpoint", ckpt_dir + "-missing", "--history", "3"]) == 2
    assert "no such checkpoint" in capsys.readouterr().err
