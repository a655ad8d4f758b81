"""Generation tasks (NIG / AIG / QLA) and their vectorised sample builder."""

from mqlrec.tasks.registry import ALIASES, ALL_TASKS, NIG_TASK, TASKS, Task, default_tasks, resolve_tasks
from mqlrec.tasks.samples import SPLITS, Samples, SequenceTable, build_samples, concat_samples, encode_sources, encode_targets

__all__ = [
    "ALIASES",
    "ALL_TASKS",
    "NIG_TASK",
    "TASKS",
    "Task",
    "default_tasks",
    "resolve_tasks",
    "SPLITS",
    "Samples",
    "SequenceTable",
    "build_samples",
    "concat_samples",
    "encode_sources",
    "encode_targets",
]
