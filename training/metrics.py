"""Regression metrics and the metrics log the app plots live.

``OUTPUT_DIR/metrics.jsonl`` gets one JSON object per line, flushed at once, so a reader
polling the file never sees half a record it cannot skip. TensorBoard gets the same scalars
when it is installed.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np


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


def _clean(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None  # JSON has no NaN; the plot skips nulls
    if isinstance(v, (np.floating, np.integer)):
        return _clean(v.item())
    return v


class MetricsLog:
    """Append-only JSONL (one flushed line per record) + TensorBoard scalars when available."""

    def __init__(self, output_dir: str | Path, tensorboard: bool = True):
        self.path = Path(output_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the run
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(Path(output_dir) / "tensorboard"))
            except Exception:  # tensorboard not installed: JSONL only
                self._tb = None

    def log(self, split: str, step: int, **values) -> dict:
        rec = {"time": round(time.time(), 3), "split": split, "step": int(step)}
        for k, v in values.items():
            if hasattr(v, "__dataclass_fields__"):
                rec.update({f"{k}_{kk}": _clean(vv) for kk, vv in asdict(v).items()})
            else:
                rec[k] = _clean(v)
        self._f.write(json.dumps(rec) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())
        if self._tb is not None:
            for k, v in rec.items():
                if k not in ("time", "split", "step") and isinstance(v, (int, float)):
                    self._tb.add_scalar(f"{split}/{k}", v, step)
        return rec

    def close(self) -> None:
        self._f.close()
        if self._tb is not None:
            self._tb.close()


def read_metrics(path: str | Path) -> list[dict]:
    """Every complete line of a metrics.jsonl (a torn last line after a kill is skipped)."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out
