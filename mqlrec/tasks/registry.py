"""The generation tasks: which modality the source is written in, which the target, and how samples are made.

NIG (next item generation): seqrec (text → text), seqimage (image → image).
AIG (asymmetric item generation): seqitem2image (text history → next item's image IDs),
seqimage2item (image history → next item's text IDs); `fusionseqrec` names both.
QLA (quantitative language alignment): item2image / image2item (one item's IDs → the other modality's).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Task:
    name: str
    source: str  # modality of the prompt's item tokens
    target: str  # modality of the generated item tokens
    kind: str  # "sequence" (history → next item) or "item" (one item → itself in the other modality)


TASKS: dict[str, Task] = {
    t.name: t
    for t in [
        Task("seqrec", "text", "text", "sequence"),
        Task("seqimage", "image", "image", "sequence"),
        Task("seqitem2image", "text", "image", "sequence"),
        Task("seqimage2item", "image", "text", "sequence"),
        Task("item2image", "text", "image", "item"),
        Task("image2item", "image", "text", "item"),
    ]
}
ALIASES = {"fusionseqrec": ["seqitem2image", "seqimage2item"]}
ALL_TASKS = list(TASKS)  # every language gets every prompt token, so checkpoints share one layout
NIG_TASK = {"text": "seqrec", "image": "seqimage"}  # the prompt used to evaluate modality m


def resolve_tasks(names, modalities) -> list[str]:
    """Expand aliases, drop duplicates, and check every task's modalities are available."""
    out: list[str] = []
    for name in names:
        for t in ALIASES.get(name, [name]):
            if t not in TASKS:
                known = sorted(list(TASKS) + list(ALIASES))
                raise ValueError(f"unknown task {t!r}; known tasks: {', '.join(known)}")
            if t not in out:
                out.append(t)
    for t in out:
        missing = {TASKS[t].source, TASKS[t].target} - set(modalities)
        if missing:
            raise ValueError(f"task {t!r} needs the {sorted(missing)} IDs, but only {sorted(modalities)} are given")
    if not out:
        raise ValueError("no tasks given")
    return out


def default_tasks(modalities) -> list[str]:
    """All tasks the given modalities allow (the MQL4GRec / MACRec fine-tuning mix)."""
    return [t for t, spec in TASKS.items() if {spec.source, spec.target} <= set(modalities)]
