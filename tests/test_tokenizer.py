"""Tokenizer: RQ-VAE chain and losses, MACRec losses, training/selection, pipeline and CLI, each against
an independent computation."""

import collections
import json
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import SHARED_DATA
from mqlrec.tokenizer import TokenizerConfig, count_collisions, tokenize_dataset
from mqlrec.tokenizer.macrec import cross_modal_loss, pseudo_labels, sample_positives
from mqlrec.tokenizer.rqvae import RQVAE
from mqlrec.tokenizer.train import train_tokenizer

INSTRUMENTS = os.path.join(SHARED_DATA, "Instruments")


@pytest.fixture(autouse=True)
def one_thread():
    # tiny models: thread start-up and contention dominate; restore for the other test files
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def small_config(**kw):
    base = dict(hidden=(24, 12), e_dim=6, levels=3, codebook_size=8, epochs=3, batch_size=64,
                n_clusters=10, con_levels=(1, 2), kmeans_iters=5, eval_every=1, progress=False)
    base.update(kw)
    return TokenizerConfig(**base)


def nearest_codes(z, codebooks):
    """Independent residual quantization: explicit per-level squared distances, first minimum."""
    codes, r = [], z.clone()
    for cb in codebooks:
        d = ((r[:, None, :] - cb[None, :, :]) ** 2).sum(-1)
        c = d.argmin(1)
        codes.append(c)
        r = r - cb[c]
    return torch.stack(codes, 1)


@pytest.mark.parametrize("detach", [False, True])
def test_rqvae_forward_matches_manual_chain(detach):
    torch.manual_seed(0)
    model = RQVAE(13, hidden=(17, 9), e_dim=5, levels=3, codebook_size=7, beta=0.25, detach_residuals=detach)
    with torch.no_grad():
        model.codebooks.normal_()
    x = torch.randn(33, 13)
    out = model(x)
    z = model.encoder(x)
    codes = nearest_codes(z.detach(), model.codebooks.detach())
    assert torch.equal(out.codes, codes)
    r = z.detach().clone()
    expected_loss = 0.0
    for l in range(3):
        e = model.codebooks.detach()[l][codes[:, l]]
        torch.testing.assert_close(out.residuals[l].detach(), r)
        expected_loss += (1 + 0.25) * ((e - r) ** 2).mean() / 3
        r = r - e
    torch.testing.assert_close(out.rq_loss.detach(), expected_loss)
    total = sum(model.codebooks.detach()[l][codes[:, l]] for l in range(3))
    torch.testing.assert_close(out.codeword_sum.detach(), total)
    torch.testing.assert_close(out.z_q.detach(), total)
    torch.testing.assert_close(out.recon_loss.detach(), F.mse_loss(model.decoder(total), x).detach())
    assert out.residuals[1].requires_grad == (not detach)


def test_straight_through_and_codebook_gradients():
    torch.manual_seed(1)
    model = RQVAE(6, hidden=(8,), e_dim=4, levels=2, codebook_size=5)
    with torch.no_grad():
        model.codebooks.normal_()
    x = torch.randn(10, 6)
    out = model(x)
    z = model.encoder(x)
    g = torch.randn_like(out.z_q)
    # z_q = z + sg(sum e - z): d z_q / d encoder == d z / d encoder
    (dz_q,) = torch.autograd.grad((out.z_q * g).sum(), model.encoder[0].weight, retain_graph=True)
    (dz,) = torch.autograd.grad((z * g).sum(), model.encoder[0].weight)
    torch.testing.assert_close(dz_q, dz)
    # codebook loss of level l moves only the chosen codewords, towards the residual: 2 (e - r) / (B D) / L
    model.zero_grad()
    out = model(x)
    codes = out.codes
    out.rq_loss.backward()
    grad = model.codebooks.grad
    unused = torch.ones(2, 5, dtype=torch.bool)
    unused[0, codes[:, 0]] = False
    unused[1, codes[:, 1]] = False
    assert torch.all(grad[unused] == 0)


def test_kmeans_init_puts_codewords_on_the_data():
    torch.manual_seed(2)
    model = RQVAE(9, hidden=(11,), e_dim=4, levels=2, codebook_size=16)
    x = torch.randn(12, 9)  # fewer items than codes: each item becomes its own level-0 codeword
    model.kmeans_init(x, iters=5, seed=0)
    z = model.encoder(x).detach()
    d = torch.cdist(z, model.codebooks[0].detach())
    assert torch.all(d.min(1).values < 1e-4)
    # with more items than codes, k-means beats codewords picked at random among the items
    x = torch.randn(400, 9)
    model.kmeans_init(x, iters=10, seed=0)
    z = model.encoder(x).detach()
    km = torch.cdist(z, model.codebooks[0].detach()).min(1).values.pow(2).mean()
    rnd = torch.cdist(z, z[torch.randperm(400)[:16]]).min(1).values.pow(2).mean()
    assert km < rnd


def test_sample_positives_against_definition():
    g = torch.Generator().manual_seed(0)
    labels = torch.tensor([0, 1, 0, 2, 1, 0, 3, 3, 4])
    seen = collections.Counter()
    for _ in range(600):
        pos = sample_positives(labels, g)
        for i, p in enumerate(pos.tolist()):
            others = [j for j in range(len(labels)) if j != i and labels[j] == labels[i]]
            if not others:
                assert p == -1
            else:
                assert p in others
            if i == 0:
                seen[p] += 1
    assert set(seen) == {2, 5} and min(seen.values()) > 240  # uniform between the two candidates


def manual_info_nce_rows(a, b, tau, pos, mask_diag):
    logits = (a @ b.T) / tau
    losses = []
    for i in range(len(a)):
        if pos[i] < 0:
            continue
        row = logits[i].clone()
        if mask_diag:
            row[i] = float("-inf")
        losses.append(torch.logsumexp(row, 0) - row[pos[i]])
    return torch.stack(losses).mean()


@pytest.mark.parametrize("align_on", ["straight_through", "codewords"])
def test_cross_modal_loss_matches_manual(align_on):
    torch.manual_seed(3)
    text = RQVAE(7, hidden=(9,), e_dim=5, levels=3, codebook_size=6)
    image = RQVAE(11, hidden=(9,), e_dim=5, levels=3, codebook_size=6)
    with torch.no_grad():
        text.codebooks.normal_()
        image.codebooks.normal_()
    xt, xi = torch.randn(19, 7), torch.randn(19, 11)
    ot, oi = text(xt), image(xi)
    lt, li = torch.randint(0, 4, (19,)), torch.randint(0, 4, (19,))
    loss, parts = cross_modal_loss(ot, oi, lt, li, (1, 2), 0.1, 0.001, 0.1, align_on, torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    pos_t, pos_i = sample_positives(li, g), sample_positives(lt, g)
    con = 0.0
    for l in (1, 2):
        rt, ri = F.normalize(ot.residuals[l], dim=1), F.normalize(oi.residuals[l], dim=1)
        con = con + manual_info_nce_rows(rt, rt, 0.1, pos_t, True) + manual_info_nce_rows(ri, ri, 0.1, pos_i, True)
    zt, zi = (ot.z_q, oi.z_q) if align_on == "straight_through" else (ot.codeword_sum, oi.codeword_sum)
    zt, zi = F.normalize(zt, dim=1), F.normalize(zi, dim=1)
    diag = torch.arange(19)
    align = manual_info_nce_rows(zt, zi, 0.1, diag, False) + manual_info_nce_rows(zi, zt, 0.1, diag, False)
    torch.testing.assert_close(loss, 0.1 * con + 0.001 * align)
    assert parts["con"] == pytest.approx(con.item(), rel=1e-5)
    # the residual loss reaches the encoders only through a differentiable chain
    (grad,) = torch.autograd.grad(loss, text.encoder[0].weight)
    assert grad.abs().sum() > 0


def test_pseudo_labels_are_a_kmeans_fixed_point_and_capped():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(5, 4)) * 6
    x = (centres[rng.integers(0, 5, 300)] + rng.normal(size=(300, 4))).astype(np.float32)
    labels = pseudo_labels(x, n_clusters=5, iters=30, seed=0)
    # converged k-means: (almost) every item is nearest to the mean of its own cluster
    means = np.stack([x[labels == c].mean(0) for c in range(5)])
    nearest = np.argmin(((x[:, None] - means[None]) ** 2).sum(-1), 1)
    assert (nearest == labels).mean() > 0.98
    small = pseudo_labels(x[:5], n_clusters=512, iters=3, seed=0)
    assert sorted(small.tolist()) == list(range(5))  # capped at N: each item its own cluster


@pytest.mark.parametrize("method", ["rqvae", "macrec"])
def test_training_is_seeded_and_keeps_fewest_collisions(method):
    rng = np.random.default_rng(0)
    emb = {"text": rng.normal(size=(150, 10)).astype(np.float32), "image": rng.normal(size=(150, 7)).astype(np.float32)}
    cfg = small_config(method=method, epochs=4)
    a = train_tokenizer(emb, cfg)
    b = train_tokenizer(emb, cfg)
    for m in emb:
        x = torch.from_numpy(emb[m])
        ca = a.models[m].quantize_all(x).codes.numpy()
        np.testing.assert_array_equal(ca, b.models[m].quantize_all(x).codes.numpy())
        # the kept state is the evaluated one with the fewest collisions
        assert count_collisions(ca) == a.best_collisions[m]
        evaluated = [h["collisions"][m] for h in a.history if "collisions" in h]
        if method == "rqvae":
            assert a.best_collisions[m] <= min(evaluated)
    if method == "macrec":
        totals = [sum(h["collisions"].values()) for h in a.history if "collisions" in h]
        assert sum(a.best_collisions.values()) <= min(totals)
        assert a.best_epoch["text"] == a.best_epoch["image"]
        assert "con" in a.history[0] and "align" in a.history[0]


def test_tokenize_dataset_stats_against_independent_counts():
    rng = np.random.default_rng(1)
    emb = {"text": rng.normal(size=(200, 9)).astype(np.float32), "image": rng.normal(size=(200, 5)).astype(np.float32)}
    res = tokenize_dataset(emb, small_config(method="macrec", codebook_size=6, levels=3, realloc_candidates=3))
    for m in emb:
        codes, before, s = res.codes[m], res.codes_before[m], res.stats["modalities"][m]
        assert codes.shape == (200, 3) and codes.dtype == np.int64 and codes.min() >= 0 and codes.max() < 6
        assert len({tuple(r) for r in codes.tolist()}) == 200
        n_before = 200 - len({tuple(r) for r in before.tolist()})
        assert s["collisions_before"] == n_before and s["collision_rate_before"] == pytest.approx(n_before / 200)
        assert s["collisions_after"] == 0
        assert s["items_moved_per_level"] == [int(sum(before[i, l] != codes[i, l] for i in range(200))) for l in range(3)]
        for l, u in enumerate(s["usage_before"]):
            counter = collections.Counter(before[:, l].tolist())
            assert u["counts"] == [counter.get(c, 0) for c in range(6)]
            assert u["codes_used"] == len(counter)
        # the quantizer's codes are the nearest codes of the kept model
        model = res.trained.models[m]
        z = model.encoder(torch.from_numpy(emb[m])).detach()
        np.testing.assert_array_equal(before, nearest_codes(z, model.codebooks.detach()).numpy())
    json.dumps(res.stats)  # JSON-able


def test_bad_embeddings_raise():
    good = np.zeros((10, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="rows"):
        tokenize_dataset({"text": good, "image": good[:9]}, small_config())
    bad = good.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        tokenize_dataset({"text": bad}, small_config())
    with pytest.raises(ValueError, match="two modalities"):
        tokenize_dataset({"text": good}, small_config(method="macrec"))
    with pytest.raises(ValueError, match="unique IDs"):
        tokenize_dataset({"text": np.random.rand(100, 3).astype(np.float32)}, small_config(codebook_size=2, levels=3))


TINY = ["--hidden", "16,8", "--e-dim", "4", "--levels", "3", "--codebook-size", "8", "--epochs", "2",
        "--con-levels", "1,2", "--clusters", "8", "--kmeans-iters", "3", "--no-progress"]


def test_cli_synthetic_writes_readable_outputs(tmp_path):
    from mqlrec.data import read_index
    from mqlrec.tokenize import main

    out = tmp_path / "out"
    assert main(["--out", str(out), "--method", "macrec", *TINY]) == 0
    for m in ("text", "image"):
        modality, codes = read_index(str(out / f"synthetic.index_{m}.json"))
        assert modality == m and codes.shape == (500, 3)
        assert len({tuple(r) for r in codes.tolist()}) == 500
    stats = json.loads((out / "synthetic.tokenize_stats.json").read_text())
    assert stats["method"] == "macrec" and stats["modalities"]["text"]["collisions_after"] == 0
    assert (out / "synthetic.code_usage.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in os.listdir(out) if p.endswith(".tmp")]


def test_cli_bad_input_exits_nonzero_and_writes_nothing(tmp_path, capsys):
    from mqlrec.data import write_mqlrec
    from mqlrec.data.synthetic import make_synthetic
    from mqlrec.tokenize import main

    data = tmp_path / "Tiny"
    write_mqlrec(make_synthetic(seed=0), str(data))
    short = tmp_path / "short.npy"
    np.save(short, np.zeros((7, 4), dtype=np.float32))
    nan = tmp_path / "nan.npy"
    table = np.zeros((500, 4), dtype=np.float32)
    table[5, 2] = np.inf
    np.save(nan, table)
    cases = [
        (["--emb", f"text={short}"], "short.npy"),
        (["--emb", f"text={nan}"], "nan.npy"),
        (["--emb", f"text={tmp_path / 'missing.npy'}"], "missing.npy"),
        (["--emb", "sound=x.npy"], "modality"),
    ]
    for extra, needle in cases:
        out = tmp_path / f"out_{needle}"
        assert main(["--data", str(data), "--out", str(out), *extra, *TINY]) == 2
        assert needle in capsys.readouterr().err
        assert not out.exists()


@pytest.mark.skipif(not os.path.isdir(INSTRUMENTS), reason=f"shared data folder {INSTRUMENTS} not present")
def test_instruments_collision_free(tmp_path):
    from mqlrec.data import read_index
    from mqlrec.tokenize import main

    emb = os.path.join(INSTRUMENTS, "Instruments.emb-sasrec32-lcrec.npy")
    out = tmp_path / "inst"
    args = ["--data", INSTRUMENTS, "--emb", f"text={emb}", "--out", str(out), "--hidden", "32,16", "--epochs", "1",
            "--no-progress", "--kmeans-iters", "5"]
    assert main(args) == 0
    _, codes = read_index(str(out / "Instruments.index_text.json"))
    assert codes.shape == (6250, 4) and len({tuple(r) for r in codes.tolist()}) == 6250
