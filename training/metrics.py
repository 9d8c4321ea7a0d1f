"""Regression metrics and the metrics log the app plots live.

``OUTPUT_DIR/metrics.jsonl`` is written through ``core.runs`` (one flushed JSON line per record,
which the app reads without torch); TensorBoard gets the same scalars when it is installed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from speechint_desktop.core.runs import MetricsWriter, metrics_record, read_metrics


@dataclass(frozen=True)
class Regression:
    rmse: float
    mae: float
    r2: float
    n: int


def regression(targets: Sequence[float], predictions: Sequence[float]) -> Regression:
    """RMSE and MAE in the target's units; R² = 1 − SSE/SST (NaN when the target is constant)."""
    y = np.asarray(targets, dtype=np.float64)
    p = np.asarray(predictions, dtype=np.float64)
    if y.size == 0:
        return Regression(math.nan, math.nan, math.nan, 0)
    err = p - y
    sst = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float((err**2).sum()) / sst if sst > 0 else math.nan
    return Regression(float(np.sqrt((err**2).mean())), float(np.abs(err).mean()), r2, int(y.size))


class MetricsLog:
    """``core.runs.MetricsWriter``'s JSONL (what the app reads) + TensorBoard scalars when available."""

    def __init__(self, output_dir: str | Path, tensorboard: bool = True):
        self._writer = MetricsWriter(output_dir)
        self.path = self._writer.path
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(Path(output_dir) / "tensorboard"))
            except Exception:  # tensorboard not installed: JSONL only
                self._tb = None

    def log(self, split: str, step: int, **values) -> dict:
        rec = self._writer.write(metrics_record(split, step, **values))
        if self._tb is not None:
            for k, v in rec.items():
                if k not in ("time", "split", "step") and isinstance(v, (int, float)):
                    self._tb.add_scalar(f"{split}/{k}", v, step)
        return rec

    def close(self) -> None:
        self._writer.close()
        if self._tb is not None:
            self._tb.close()


__all__ = ["MetricsLog", "Regression", "read_metrics", "regression"]
