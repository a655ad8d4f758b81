"""Where every benchmark writes: one JSON list per benchmark in bench/results, a run appended atomically."""

from __future__ import annotations

import json
import os
import platform
import tempfile

import torch


def cpu_name() -> str:
    return f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


def append_json(path: str, record: dict) -> None:
    """Append one run to a JSON list, atomically (temp file + os.replace)."""
    runs = []
    if os.path.exists(path):
        with open(path) as f:
            runs = json.load(f)
        if not isinstance(runs, list):
            raise SystemExit(f"{path}: expected a JSON list of runs")
    runs.append(record)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(runs, f, indent=1)
    os.replace(tmp, path)
    print(f"appended to {path}")
