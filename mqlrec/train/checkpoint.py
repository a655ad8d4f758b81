"""Checkpoint directories: Hugging Face T5 (safetensors) + language.json + mqlrec.json (+ titles, train state).

`T5ForConditionalGeneration.from_pretrained(dir)` loads the model alone; `load_checkpoint(dir)` gives
model, language and metadata. Directories are written atomically: into a temp dir next to the
target, then renamed into place, so a crash never leaves half a checkpoint under the final name.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass

import numpy as np
import torch

from mqlrec.language import Language

FORMAT_VERSION = 1
META_FILE = "mqlrec.json"
LANGUAGE_FILE = "language.json"
TITLES_FILE = "items.json"
STATE_FILE = "train_state.pt"


class CheckpointError(ValueError):
    """A checkpoint that is missing, malformed or does not fit the data it is used with."""


def dataset_fingerprint(sequences, n_items: int) -> str:
    """Stable hash of the interactions (a checkpoint is tied to the item ids it was trained on)."""
    h = hashlib.sha256(f"{n_items}:{len(sequences)}".encode())
    for s in sequences:
        a = np.asarray(s, dtype=np.int64)
        h.update(np.int64(len(a)).tobytes())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def item_titles(dataset) -> list[str] | None:
    if not dataset.item_text:
        return None
    return [str((t or {}).get("title", "")) for t in dataset.item_text]


@dataclass
class Checkpoint:
    model: object  # transformers.T5ForConditionalGeneration
    language: Language
    meta: dict
    titles: list[str] | None
    path: str


def _quiet_transformers() -> None:
    """No per-file progress bars from transformers: a checkpoint is a few MB and is written every epoch."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def save_checkpoint(path: str, model, language: Language, meta: dict, titles=None, train_state: dict | None = None) -> None:
    _quiet_transformers()
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.tmp-", dir=parent)
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        language.save(os.path.join(tmp, LANGUAGE_FILE))
        with open(os.path.join(tmp, META_FILE), "w") as f:
            json.dump({"format": FORMAT_VERSION, **meta}, f, indent=1)
        if titles is not None:
            with open(os.path.join(tmp, TITLES_FILE), "w") as f:
                json.dump(list(titles), f)
        if train_state is not None:
            torch.save(train_state, os.path.join(tmp, STATE_FILE))
        # Swap in: old → .old, tmp → path, drop .old. Between the two renames a reader finds .old.
        old = f"{os.path.abspath(path)}.old"
        if os.path.exists(old):
            shutil.rmtree(old)
        if os.path.exists(path):
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def resolve(path: str) -> str:
    """The checkpoint directory, falling back to the previous one when a swap was interrupted."""
    if os.path.isdir(path):
        return path
    if os.path.isdir(f"{os.path.abspath(path)}.old"):
        return f"{os.path.abspath(path)}.old"
    raise CheckpointError(f"{path}: no such checkpoint directory")


def read_meta(path: str) -> dict:
    path = resolve(path)
    meta_path = os.path.join(path, META_FILE)
    if not os.path.exists(meta_path):
        raise CheckpointError(f"{path}: not an mqlrec checkpoint (no {META_FILE})")
    with open(meta_path) as f:
        try:
            meta = json.load(f)
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{meta_path}: malformed JSON at line {e.lineno}: {e.msg}") from None
    if meta.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"{meta_path}: checkpoint format {meta.get('format')}, this mqlrec reads {FORMAT_VERSION}")
    return meta


def load_checkpoint(path: str, device: str = "cpu") -> Checkpoint:
    from mqlrec.model import load_model

    _quiet_transformers()
    path = resolve(path)
    meta = read_meta(path)
    language = Language.load(os.path.join(path, LANGUAGE_FILE))
    model = load_model(path).to(device)
    if model.config.vocab_size != language.vocab_size:
        raise CheckpointError(
            f"{path}: the model's vocabulary ({model.config.vocab_size}) does not match {LANGUAGE_FILE} ({language.vocab_size})"
        )
    titles = None
    titles_path = os.path.join(path, TITLES_FILE)
    if os.path.exists(titles_path):
        with open(titles_path) as f:
            titles = json.load(f)
    return Checkpoint(model=model, language=language, meta=meta, titles=titles, path=path)


def load_train_state(path: str) -> dict | None:
    state_path = os.path.join(resolve(path), STATE_FILE)
    if not os.path.exists(state_path):
        return None
    return torch.load(state_path, map_location="cpu", weights_only=False)


def check_compatible(meta: dict, language: Language, fingerprint: str | None, path: str) -> None:
    """Refuse a checkpoint trained on other data or with other ID shapes (levels L / codebook K)."""
    if fingerprint is not None and meta.get("fingerprint") != fingerprint:
        raise CheckpointError(
            f"{path}: checkpoint was trained on dataset {meta.get('dataset')!r} "
            f"(fingerprint {meta.get('fingerprint')}), not on this data (fingerprint {fingerprint})"
        )
    ckpt_lang = meta.get("language_shape", {})
    here = language_shape(language)
    if ckpt_lang != here:
        raise CheckpointError(f"{path}: checkpoint IDs have shape {ckpt_lang} (levels, codebook size per modality), the given IDs {here}")


def language_shape(language: Language) -> dict:
    return {m: [language.n_levels[m], language.n_codes[m]] for m in language.modalities}
