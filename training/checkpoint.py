"""Resumable checkpoints without pickle: tensors in safetensors, everything else in JSON.

A checkpoint is a folder ``OUTPUT_DIR/checkpoints/step-NNNNNNN`` (built under a temporary name
and renamed into place, so a ``kill -9`` leaves either the old set or the new one) holding:

- the model as a normal transformers checkpoint (``model.safetensors`` + config + processor),
  so ``evaluate``, the CLI and the app load it like any model folder;
- ``optimizer.safetensors``: every tensor of the optimizer state, keyed ``state.<param>.<name>``,
  plus the torch CPU RNG state;
- ``state.json``: optimizer hyper-parameters and non-tensor state, scheduler state, Python and
  NumPy RNG state, the step, epoch and data position, and the metric used to pick the best.

The pointers (``latest.json``, ``best.json``) and the pruning — only the latest and the best
checkpoint stay, the optimizer state only in the latest — are ``core.runs``'s, which the app reads
without torch.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from speechint_desktop.core import runs
from speechint_desktop.core.fsutil import atomic_dir
from speechint_desktop.core.runs import best_checkpoint, checkpoints_dir, latest_checkpoint

STATE_FILE, TENSORS_FILE = "state.json", "optimizer.safetensors"
assert {STATE_FILE, TENSORS_FILE} == set(runs.OPTIMIZER_FILES)


@dataclass
class TrainState:
    """Where the run is: optimizer steps done, and the next micro-batch to read."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # micro-batches of this epoch already consumed
    samples_seen: int = 0
    best_metric: float | None = None
    best_step: int | None = None
    extra: dict = field(default_factory=dict)


# ---------------------------------------------------------------- optimizer state ↔ safetensors


def _split_state(sd: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors: dict[str, torch.Tensor] = {}
    plain: dict = {"state": {}, "param_groups": sd["param_groups"]}
    for pid, st in sd["state"].items():
        plain["state"][str(pid)] = {}
        for name, v in st.items():
            if torch.is_tensor(v):
                tensors[f"state.{pid}.{name}"] = v.detach().cpu().contiguous()
            else:
                plain["state"][str(pid)][name] = v
    return tensors, plain


def _join_state(tensors: dict[str, torch.Tensor], plain: dict) -> dict:
    state: dict[int, dict] = {int(pid): dict(v) for pid, v in plain["state"].items()}
    for key, t in tensors.items():
        if key.startswith("state."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = t
    groups = [dict(g) for g in plain["param_groups"]]
    for g in groups:
        if "betas" in g and isinstance(g["betas"], list):
            g["betas"] = tuple(g["betas"])
    return {"state": state, "param_groups": groups}


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if torch.is_tensor(x):
        return x.item() if x.numel() == 1 else x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, float | int | str | bool) or x is None:
        return x
    return None  # e.g. a scheduler's lambda: re-created by the code, not stored


# ---------------------------------------------------------------- RNG


def rng_state() -> tuple[dict, dict[str, torch.Tensor]]:
    v, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    plain = {
        "python": [v, list(internal), gauss],
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
    }
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    return plain, tensors


def set_rng_state(plain: dict, tensors: dict[str, torch.Tensor]) -> None:
    v, internal, gauss = plain["python"]
    random.setstate((v, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = plain["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(tensors["rng.torch"])
    if torch.cuda.is_available():
        cuda = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.")]
        if cuda:
            torch.cuda.set_rng_state_all(cuda)


# ---------------------------------------------------------------- save / load


def save_checkpoint(
    output_dir: str | Path,
    model,
    processor,
    optimizer,
    scheduler,
    state: TrainState,
    is_best: bool = False,
) -> Path:
    """Write ``checkpoints/step-N`` atomically, update the pointers, keep only the latest and best."""
    final = runs.step_dir(output_dir, state.step)
    opt_tensors, opt_plain = _split_state(optimizer.state_dict())
    rng_plain, rng_tensors = rng_state()
    with atomic_dir(final) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        if processor is not None:
            processor.save_pretrained(tmp)
        src_norm = Path(getattr(model.config, "_name_or_path", "") or "") / "normalizer.json"
        if src_norm.is_file():  # processor.save_pretrained drops it (machine-facts)
            shutil.copy(src_norm, tmp / "normalizer.json")
        save_file({**opt_tensors, **rng_tensors}, str(tmp / TENSORS_FILE))
        doc = {
            "train_state": asdict(state),
            "optimizer": _jsonable(opt_plain),
            "scheduler": _jsonable(scheduler.state_dict()) if scheduler is not None else None,
            "rng": rng_plain,
        }
        (tmp / STATE_FILE).write_text(json.dumps(doc))
    runs.write_pointers(output_dir, final, state.step, state.best_metric, is_best)
    runs.prune(output_dir)
    return final


__all__ = [
    "best_checkpoint",
    "checkpoints_dir",
    "latest_checkpoint",
    "save_checkpoint",
    "load_training_state",
]


def load_training_state(ckpt: str | Path, optimizer, scheduler) -> TrainState:
    """Restore optimizer, scheduler and RNG from ``ckpt`` (the model weights are loaded by the caller)."""
    ckpt = Path(ckpt)
    doc = json.loads((ckpt / STATE_FILE).read_text())
    tensors = load_file(str(ckpt / TENSORS_FILE))
    optimizer.load_state_dict(_join_state(tensors, doc["optimizer"]))
    if scheduler is not None and doc.get("scheduler"):
        sd = {k: v for k, v in doc["scheduler"].items() if k != "lr_lambdas"}
        scheduler.load_state_dict({**scheduler.state_dict(), **sd})
    set_rng_state(doc["rng"], tensors)
    return TrainState(**doc["train_state"])
