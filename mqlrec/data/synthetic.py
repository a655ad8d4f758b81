"""A small multimodal catalog with real structure, so every stage can be exercised without downloads.

Generative story (all draws from one seeded numpy Generator):
- Items belong to one of `n_topics` latent topics; item latent = topic centre + item-specific factor.
- Text-like and image-like embeddings are two different random projections of that latent, each
  plus its own modality-specific nuisance factors and noise: they agree on topics, not on pixels.
- Popularity is Zipf-skewed (a random rank per item).
- Users drift between topics by a Markov chain (stay, or jump to one of a topic's favourite neighbours),
  and every item has a few "successor" items (same or neighbouring topic) that often come next:
  order carries information a sequence model can use and a popularity model cannot.
"""

from __future__ import annotations

import numpy as np

from mqlrec.data.dataset import Dataset
from mqlrec.data.split import leave_one_out

_WORDS = [
    "guitar", "piano", "drum", "violin", "microphone", "cable", "amplifier", "pedal", "strings", "stand",
    "brush", "canvas", "paint", "marker", "yarn", "clay", "sketchbook", "easel", "glue", "ribbon",
    "controller", "headset", "console", "keyboard", "mouse", "charger", "skin", "case", "cartridge", "card",
]
_ADJECTIVES = ["classic", "pro", "compact", "deluxe", "vintage", "studio", "travel", "premium", "mini", "heavy"]


def make_synthetic(
    seed: int = 0,
    n_items: int = 500,
    n_users: int = 1500,
    n_topics: int = 20,
    text_dim: int = 64,
    image_dim: int = 48,
    latent_dim: int = 16,
    min_length: int = 5,
    mean_extra_length: float = 4.0,
    max_length: int = 50,
    stay_prob: float = 0.75,
    successor_prob: float = 0.5,
    n_successors: int = 3,
    zipf_exponent: float = 1.0,
) -> Dataset:
    """Return a Dataset with sequences, leave-one-out splits, item titles and text/image embeddings."""
    if n_items < max(n_topics, max_length + 1) or n_users < 1 or min_length < 3:
        raise ValueError("need n_items >= max(n_topics, max_length + 1), n_users >= 1, min_length >= 3")
    rng = np.random.default_rng(seed)

    # Items: topic, latent factor, popularity.
    topic = np.concatenate([np.arange(n_topics), rng.integers(0, n_topics, n_items - n_topics)])
    rng.shuffle(topic)
    centres = rng.normal(size=(n_topics, latent_dim))
    latent = centres[topic] + 0.6 * rng.normal(size=(n_items, latent_dim))
    popularity = 1.0 / (1.0 + rng.permutation(n_items)) ** zipf_exponent

    # Two modalities: different projections of the shared latent + own nuisance factors + noise.
    def modality(dim: int) -> np.ndarray:
        projection = rng.normal(size=(latent_dim, dim)) / np.sqrt(latent_dim)
        nuisance = rng.normal(size=(n_items, 8)) @ rng.normal(size=(8, dim)) / np.sqrt(8)
        return (latent @ projection + 0.5 * nuisance + 0.3 * rng.normal(size=(n_items, dim))).astype(np.float32)

    text = modality(text_dim)
    image = modality(image_dim)

    # Topic drift: stay, else jump to one of 3 favourite neighbour topics.
    neighbours = np.stack([rng.choice(np.delete(np.arange(n_topics), t), 3, replace=False) for t in range(n_topics)])
    members = [np.nonzero(topic == t)[0] for t in range(n_topics)]
    member_p = [popularity[m] / popularity[m].sum() for m in members]
    # Successors: mostly same topic, sometimes a neighbour topic; drawn by popularity.
    successors = np.empty((n_items, n_successors), dtype=np.int64)
    for i in range(n_items):
        for k in range(n_successors):
            t = topic[i] if rng.random() < 0.7 else neighbours[topic[i], rng.integers(3)]
            successors[i, k] = rng.choice(members[t], p=member_p[t])
    successor_p = np.array([0.6, 0.3, 0.1][:n_successors] + [0.0] * max(0, n_successors - 3))
    successor_p /= successor_p.sum()

    topic_p = np.array([popularity[m].sum() for m in members])
    topic_p /= topic_p.sum()
    lengths = np.minimum(min_length + rng.geometric(1.0 / (1.0 + mean_extra_length), n_users) - 1, max_length)
    sequences = []
    for u in range(n_users):
        current = int(rng.choice(n_topics, p=topic_p))
        seq: list[int] = []
        seen: set[int] = set()
        while len(seq) < lengths[u]:
            item = -1
            if seq and rng.random() < successor_prob:
                item = int(successors[seq[-1], rng.choice(n_successors, p=successor_p)])
            if item < 0 or item in seen:
                if rng.random() > stay_prob:
                    current = int(neighbours[current, rng.integers(3)])
                for _ in range(8):  # a few tries for an unseen item of the current topic
                    item = int(rng.choice(members[current], p=member_p[current]))
                    if item not in seen:
                        break
                if item in seen:  # the topic is exhausted for this user: any unseen item
                    unseen = np.setdiff1d(np.arange(n_items), seq)
                    item = int(rng.choice(unseen, p=popularity[unseen] / popularity[unseen].sum()))
            current = int(topic[item])
            seq.append(item)
            seen.add(item)
        sequences.append(np.array(seq, dtype=np.int32))

    item_text = [
        {
            "title": f"{_ADJECTIVES[rng.integers(len(_ADJECTIVES))]} {_WORDS[topic[i] % len(_WORDS)]} {i}",
            "description": f"Synthetic item {i} of topic {topic[i]}.",
            "brand": f"brand{rng.integers(50)}",
            "categories": [f"topic_{topic[i]}"],
        }
        for i in range(n_items)
    ]
    return Dataset(
        name="synthetic",
        sequences=sequences,
        n_items=n_items,
        item_text=item_text,
        embeddings={"text": text, "image": image},
        splits=leave_one_out(sequences),
        user_ids=[f"U{u:06d}" for u in range(n_users)],
        item_ids=[f"I{i:06d}" for i in range(n_items)],
    )


def synthetic_topics(dataset: Dataset) -> np.ndarray:
    """The latent topic of each synthetic item (kept in item_text categories as 'topic_<t>')."""
    return np.array([int(entry["categories"][0].split("_")[1]) for entry in dataset.item_text])
