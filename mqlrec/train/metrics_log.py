"""Metrics as JSON lines (one record per epoch / stage), optionally mirrored to TensorBoard."""

from __future__ import annotations

import json
import os
import time

import numpy as np


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    return x


class MetricsLog:
    def __init__(self, path: str, tensorboard: bool = False, enabled: bool = True):
        self.path, self.enabled, self.writer = path, enabled, None
        if not enabled:
            return
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as e:
                raise ValueError(f"--tensorboard needs the tensorboard package: {e}") from None
            self.writer = SummaryWriter(os.path.join(os.path.dirname(path), "tb"))
        self._step = 0

    def __call__(self, record: dict) -> None:
        if not self.enabled:
            return
        record = _jsonable({"time": time.time(), **record})
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer is not None:
            self._step += 1
            stage = record.get("stage", "run")
            step = record.get("epoch", self._step)
            for key, value in record.items():
                if isinstance(value, (int, float)) and key not in ("time", "epoch"):
                    self.writer.add_scalar(f"{stage}/{key}", value, step)
                elif isinstance(value, dict):
                    for k, v in value.items():
                        if isinstance(v, (int, float)):
                            self.writer.add_scalar(f"{stage}/{key}/{k}", v, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
