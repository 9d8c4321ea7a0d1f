"""A training run's files, read and written in one place, without torch (the app reads them live).

    RUN/metrics.jsonl                 one JSON record per line (config, train, validation, test, done)
    RUN/checkpoints/step-NNNNNNN/     a model folder (config.json, model.safetensors, processor)
    RUN/checkpoints/latest.json       {"path": "step-…", "step": N}             the last saved
    RUN/checkpoints/best.json         {"path": "step-…", "step": N, "metric": x} the best validated

Pointers are written atomically after their folder exists, so they never name a half-written
checkpoint. ``prune`` keeps only the latest and the best checkpoint, and the optimizer state only
in the latest (the one a resume reads): a run's disk use stays at about two model copies.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from .fsutil import atomic_write_text, remove_leftover_temps

METRICS_FILE = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
LATEST = "latest.json"
BEST = "best.json"
OPTIMIZER_FILES = ("optimizer.safetensors", "state.json")  # resume state: the latest checkpoint only
MAX_BYTES_PER_TICK = 256 * 1024


def checkpoints_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINTS


def step_dir(run_dir: str | Path, step: int) -> Path:
    return checkpoints_dir(run_dir) / f"step-{int(step):07d}"


def _pointer(root: Path, name: str) -> Path | None:
    try:
        p = root / json.loads((root / name).read_text(encoding="utf-8"))["path"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return p if p.is_dir() else None


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    return _pointer(checkpoints_dir(run_dir), LATEST)


def best_checkpoint(run_dir: str | Path) -> Path | None:
    return _pointer(checkpoints_dir(run_dir), BEST)


def write_pointers(
    run_dir: str | Path, checkpoint: Path, step: int, best_metric: float | None = None, is_best: bool = False
) -> None:
    """Point ``latest.json`` (and, if ``is_best``, ``best.json``) at an existing checkpoint folder."""
    root = checkpoints_dir(run_dir)
    atomic_write_text(root / LATEST, json.dumps({"path": checkpoint.name, "step": int(step)}))
    if is_best:
        metric = best_metric if best_metric is None or math.isfinite(best_metric) else None
        atomic_write_text(
            root / BEST, json.dumps({"path": checkpoint.name, "step": int(step), "metric": metric})
        )


def prune(run_dir: str | Path) -> None:
    """Delete every checkpoint but the latest and the best, and what killed saves left; drop the
    optimizer state from the best when it is not also the latest."""
    root = checkpoints_dir(run_dir)
    latest, best = latest_checkpoint(run_dir), best_checkpoint(run_dir)
    remove_leftover_temps(root)  # a save a kill cut short: a hidden half checkpoint, model-sized
    for p in root.glob("step-*"):
        if p.is_dir() and p not in (latest, best):
            shutil.rmtree(p, ignore_errors=True)
    if best is not None and best != latest:
        for name in OPTIMIZER_FILES:
            (best / name).unlink(missing_ok=True)


def find_checkpoint(run_dir: str | Path) -> Path | None:
    """The model a run leaves: the best checkpoint, else the latest; a model folder is itself."""
    run_dir = Path(run_dir)
    for p in (best_checkpoint(run_dir), latest_checkpoint(run_dir)):
        if p is not None and (p / "config.json").is_file():
            return p
    if (run_dir / "config.json").is_file():
        return run_dir
    # no pointer (written by another tool, or a pointer lost): the newest saved step
    steps = sorted(p for p in checkpoints_dir(run_dir).glob("step-*") if (p / "config.json").is_file())
    return steps[-1] if steps else None


def is_run_dir(path: str | Path) -> bool:
    return checkpoints_dir(path).is_dir() or (Path(path) / METRICS_FILE).is_file()


# --------------------------------------------------------------------------- metrics


def _clean(v):
    """JSON has no NaN: a value that is not finite becomes null (the plots skip nulls)."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):  # numpy / torch scalars
        try:
            return _clean(v.item())
        except Exception:  # not a scalar
            return v
    return v


def metrics_record(split: str, step: int, **values) -> dict:
    """One metrics line: time, split, step and the values (dataclasses flattened as ``name_field``)."""
    from dataclasses import asdict, is_dataclass

    rec = {"time": round(time.time(), 3), "split": split, "step": int(step)}
    for k, v in values.items():
        if is_dataclass(v):
            rec.update({f"{k}_{kk}": _clean(vv) for kk, vv in asdict(v).items()})
        else:
            rec[k] = _clean(v)
    return rec


class MetricsWriter:
    """Append-only ``metrics.jsonl``: each record one flushed, fsynced line (a kill tears at most
    the last line, which readers skip)."""

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / METRICS_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the run

    def write(self, rec: dict) -> dict:
        self._f.write(json.dumps(rec) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())
        return rec

    def close(self) -> None:
        self._f.close()


def read_metrics(path: str | Path) -> list[dict]:
    """Every complete record of a metrics.jsonl (a torn last line after a kill is skipped)."""
    out = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(obj, dict):
                    out.append(obj)
    except FileNotFoundError:
        pass
    return out


def truncate_metrics(run_dir: str | Path, after_step: int) -> None:
    """Drop the records a killed run wrote after the checkpoint it resumes from."""
    path = Path(run_dir) / METRICS_FILE
    if path.exists():
        kept = [r for r in read_metrics(path) if r.get("step", 0) <= after_step]
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in kept))


class MetricsTail:
    """Reads the complete JSON lines appended to a file since the last call (bounded per call)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.offset = 0
        self._partial = b""

    def read(self, max_bytes: int = MAX_BYTES_PER_TICK) -> list[dict]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read(max_bytes)
        except OSError:
            return []
        self.offset += len(chunk)
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()
        out = []
        for line in lines:
            try:
                obj = json.loads(line) if line.strip() else None
            except ValueError:
                continue
            if isinstance(obj, dict):
                out.append(obj)
        return out


# --------------------------------------------------------------------------- progress


@dataclass(frozen=True)
class Progress:
    """Where a run is: ``step`` of ``total`` optimizer steps and the estimated seconds left."""

    step: int
    total: int | None
    eta_s: float | None

    def text(self) -> str:
        """``step 12 of 20 · about 1 min 30 s left`` (what the Train tab shows)."""
        s = f"step {self.step} of {self.total}" if self.total else f"step {self.step}"
        if self.eta_s is not None and self.total and self.step < self.total:
            s += f" · about {format_duration(self.eta_s)} left"
        return s


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, s = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {s:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class ProgressTracker:
    """Step N of M and an ETA from a run's records: the total from the ``config`` record, the rate
    from the training records' wall-clock times (validation pauses included, as the user waits
    for them too)."""

    def __init__(self):
        self.total: int | None = None
        self.start_step = 0
        self.start_time: float | None = None
        self.step = 0
        self.last_time: float | None = None

    def add(self, records: list[dict]) -> None:
        for r in records:
            split, step, t = r.get("split"), r.get("step"), r.get("time")
            if split == "config":
                total = r.get("total_steps")
                self.total = int(total) if isinstance(total, (int, float)) else self.total
                if isinstance(t, (int, float)):
                    self.start_time, self.start_step = float(t), 0
                continue
            if split != "train" or not isinstance(step, (int, float)) or not isinstance(t, (int, float)):
                continue
            if self.start_time is None:  # a resumed run: measure from its first new step
                self.start_time, self.start_step = float(t), int(step)
            self.step, self.last_time = max(self.step, int(step)), float(t)

    def progress(self, now: float | None = None) -> Progress:
        eta = None
        done = self.step - self.start_step
        if self.total and done > 0 and self.start_time is not None and self.last_time is not None:
            per_step = (self.last_time - self.start_time) / done
            eta = per_step * (self.total - self.step)
            if now is not None:  # time since the last record already counts
                eta = max(0.0, eta - max(0.0, now - self.last_time))
        return Progress(self.step, self.total, eta)
