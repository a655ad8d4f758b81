import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mqlrec.language import Language
from mqlrec.model import GenerativeRecommender, ModelConfig, build_model, load_model
from mqlrec.tasks import ALL_TASKS, build_samples
from mqlrec.train.batches import to_batch
from mqlrec.train.checkpoint import CheckpointError, load_checkpoint, read_meta, save_checkpoint

TINY = ModelConfig(d_model=32, d_ff=64, d_kv=8, num_heads=2, num_layers=1, num_decoder_layers=1, dropout_rate=0.0)


def tiny_setup(seed=0, n_items=23):
    rng = np.random.default_rng(seed)
    lang = Language({"text": rng.integers(0, 5, (n_items, 3)), "image": rng.integers(0, 7, (n_items, 2))}, ALL_TASKS)
    torch.manual_seed(seed)
    return lang, build_model(TINY, lang.vocab_size)


def test_official_config():
    cfg = ModelConfig()
    model = build_model(cfg, 1000)
    c = model.config
    assert (c.d_model, c.d_ff, c.d_kv, c.num_heads, c.num_layers, c.num_decoder_layers) == (128, 1024, 64, 6, 4, 4)
    assert (c.dropout_rate, c.relative_attention_num_buckets, c.vocab_size) == (0.1, 32, 1000)
    assert (c.pad_token_id, c.eos_token_id, c.decoder_start_token_id) == (0, 1, 0)


def reference_implicit_loss(t5, lang, items, tau=0.1):
    """Plain per-item loop: encode text IDs+eos and image IDs+eos, mean pool, normalise, CE both ways (summed)."""
    items = sorted(set(items.tolist()))
    embs = {}
    for m in ("text", "image"):
        rows = []
        for i in items:
            ids = torch.tensor([list(lang.item_tokens(m)[i]) + [1]])
            h = t5.encoder(input_ids=ids).last_hidden_state[0]
            rows.append(F.normalize(h.mean(0), dim=0))
        embs[m] = torch.stack(rows)
    logits = embs["text"] @ embs["image"].T / tau
    target = torch.arange(len(items))
    return F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)


@pytest.mark.parametrize("weight", [0.0, 0.01, 0.7])
def test_loss_is_ce_plus_weighted_implicit_alignment(weight):
    lang, t5 = tiny_setup()
    t5.eval()
    rec = GenerativeRecommender(t5, {m: lang.item_tokens(m) for m in lang.modalities}, implicit_weight=weight)
    seqs = [np.random.default_rng(u).integers(0, lang.n_items, 9) for u in range(5)]
    s = build_samples(seqs, lang, ["seqrec", "item2image", "seqimage2item"])
    batch = to_batch(s, np.arange(0, len(s), 3), "cpu")
    loss, parts = rec(**batch)
    ce = t5(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]).loss
    expected = ce + weight * reference_implicit_loss(t5, lang, batch["items"]) if weight else ce
    torch.testing.assert_close(loss, expected, rtol=1e-4, atol=1e-5)
    if weight:
        assert "implicit" in parts
        loss.backward()
        assert t5.shared.weight.grad is not None and t5.shared.weight.grad.abs().sum() > 0


def test_implicit_alignment_needs_both_modalities():
    lang, t5 = tiny_setup()
    with pytest.raises(ValueError, match="text and image"):
        GenerativeRecommender(t5, {"text": lang.item_tokens("text")}, implicit_weight=0.01)


def test_checkpoint_roundtrip_is_plain_hf(tmp_path):
    from transformers import T5ForConditionalGeneration

    lang, t5 = tiny_setup(1)
    path = str(tmp_path / "ckpt")
    save_checkpoint(path, t5, lang, {"dataset": "x", "fingerprint": "abc"}, titles=[f"t{i}" for i in range(lang.n_items)])
    save_checkpoint(path, t5, lang, {"dataset": "x", "fingerprint": "abc"})  # overwriting is atomic too
    plain = T5ForConditionalGeneration.from_pretrained(path)
    ids = torch.tensor([[3, 10, 12, 1]])
    t5.eval()
    with torch.no_grad():
        a = t5(input_ids=ids, decoder_input_ids=torch.zeros_like(ids[:, :1])).logits
        b = plain(input_ids=ids, decoder_input_ids=torch.zeros_like(ids[:, :1])).logits
    torch.testing.assert_close(a, b)
    ck = load_checkpoint(path)
    assert ck.language.vocab == lang.vocab and ck.meta["dataset"] == "x" and ck.titles is None
    assert not [p for p in (tmp_path).iterdir() if p.name != "ckpt"]  # no temp dirs left behind


def test_bad_checkpoints(tmp_path):
    with pytest.raises(FileNotFoundError, match="never downloads"):
        load_model("surely-not-a-cached-model-name-xyz")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        read_meta(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="not an mqlrec checkpoint"):
        read_meta(str(tmp_path / "empty"))
