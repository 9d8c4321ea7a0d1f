"""Re-create a shipped intensity head (``resources/heads/<model>.safetensors`` + ``.json``).

Encoder frozen, so the head only ever sees pooled head inputs (encoder state + mel level): one
encoder pass per (clip, gain) is cached, then the small MLP is fitted in seconds. The data is a demo corpus
(espeak-ng, levels spread over ~48 dB) plus gain-augmented copies of its training split; the
card records the data, target, standardisation, held-out metrics and the baseline's.

    python -m training.make_heads --model tiny.en
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from speechint_desktop.core.fsutil import atomic_write_bytes, atomic_write_text
from speechint_desktop.core.model import load_model, save_head
from speechint_desktop.core.paths import heads_dir
from training.baseline import fit_ridge
from training.data import SpeechIntensityDataset, load_rows
from training.demo_corpus import make_corpus
from training.features import logmel_stats, pooled_encoder_features
from training.metrics import regression

HEADS_DIR = heads_dir()
TARGET_NAMES = {"rms": "rms_dbfs", "lufs": "lufs"}


def _log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


def cached_features(
    model, processor, ds: SpeechIntensityDataset, epoch: int, limit: int | None, cache: Path
) -> dict:
    """Pooled encoder features, log-mel stats and targets for one gain copy of a split (cached)."""
    if cache.is_file():
        with np.load(cache) as z:
            return {k: z[k] for k in z.files}
    ds.set_epoch(epoch)
    n = len(ds) if limit is None else min(limit, len(ds))
    ex = [ds[i] for i in range(n)]
    audios = [e.audio for e in ex]
    t0 = time.monotonic()
    pooled = pooled_encoder_features(
        model,
        processor,
        audios,
        progress=lambda d, t: _log(f"  {cache.stem}: {d}/{t}") if d % 40 == 0 else None,
    )
    _log(f"{cache.stem}: {n} encoder passes in {time.monotonic() - t0:.0f} s")
    out = {
        "pooled": pooled,
        "logmel": np.stack([logmel_stats(a) for a in audios]),
        "target": np.array([e.target for e in ex]),
        "gain": np.array([e.gain_db for e in ex]),
    }
    import io

    buf = io.BytesIO()
    np.savez(buf, **out)
    atomic_write_bytes(cache, buf.getvalue())
    return out


def ridge_fit(x: torch.Tensor, y: torch.Tensor, alpha: float = 1.0) -> tuple[torch.Tensor, float]:
    """Ridge regression (on standardised columns) mapped back to raw columns: weights, bias."""
    mu, sd = x.mean(0), x.std(0) + 1e-8
    z = ((x - mu) / sd).double()
    w = torch.linalg.solve(
        z.T @ z + alpha * torch.eye(z.shape[1], dtype=z.dtype), z.T @ (y.double() - y.mean())
    )
    w_raw = (w / sd.double()).float()
    return w_raw, float(y.mean() - (w_raw * mu).sum())


def fit_head(
    model, Xtr, ytr, Xval, yval, steps: int = 4000, lr: float = 3e-3, seed: int = 0, on_step=None
) -> dict:
    """Full-batch AdamW on cached pooled features; keeps the weights with the best validation RMSE.

    ``on_step(step, train_loss, val_rmse)`` every 50 steps (live curves; may raise to stop)."""
    torch.manual_seed(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny MLP: one thread is ~50x faster than two on a busy machine
    try:
        return _fit_head(model, Xtr, ytr, Xval, yval, steps, lr, on_step)
    finally:
        torch.set_num_threads(threads)


def _fit_head(model, Xtr, ytr, Xval, yval, steps: int, lr: float, on_step=None) -> dict:
    head = model.intensity_head
    head.train()
    mean, std = float(ytr.mean()), float(ytr.std())
    model.config.intensity_mean, model.config.intensity_std = mean, std
    xt, xv = torch.from_numpy(Xtr).float(), torch.from_numpy(Xval).float()
    zt = torch.from_numpy((ytr - mean) / std).float()
    with torch.no_grad():  # start from the closed-form ridge fit of the linear level path
        w, b = ridge_fit(head.level(xt), zt)
        head.skip.weight.copy_(w[None])
        head.skip.bias.fill_(b)
        head.fc2.weight.zero_()
        head.fc2.bias.zero_()
        ridge_rmse = regression(yval, model.head(xv).numpy()).rmse
        best = (ridge_rmse, {k: v.clone() for k, v in head.state_dict().items()}, 0)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for step in range(1, steps + 1):
        loss = torch.nn.functional.mse_loss(head(xt), zt)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0 or step == steps:
            with torch.no_grad():
                rmse = regression(yval, model.head(xv).numpy()).rmse
            if rmse < best[0]:
                best = (rmse, {k: v.clone() for k, v in head.state_dict().items()}, step)
            if on_step is not None:
                on_step(step, float(loss.detach()), float(rmse))
    head.load_state_dict(best[1])
    head.eval()
    model.config.intensity_head_trained = True
    return {"best_step": best[2], "val_rmse": best[0], "steps": steps, "lr": lr}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.make_heads", description=__doc__.splitlines()[0])
    ap.add_argument(
        "--model", default="tiny.en", help="catalog name (or a converted model folder with --name)"
    )
    ap.add_argument("--name", default=None, help="file name of the head (default: the catalog name)")
    ap.add_argument(
        "--corpus", default="/tmp/speechint-head-corpus", help="demo corpus folder (made if missing)"
    )
    ap.add_argument("--n", type=int, default=500, help="corpus size when it has to be made")
    ap.add_argument(
        "--aug_clips",
        type=int,
        nargs="+",
        default=[150],
        help="gain-augmented copies of the training split: the first N clips of each copy",
    )
    ap.add_argument("--gain_db", type=float, default=20.0)
    ap.add_argument("--method", choices=("rms", "lufs"), default="rms")
    ap.add_argument("--cache", default=None, help="feature cache folder (default: CORPUS/.features-NAME)")
    ap.add_argument("--out", default=str(HEADS_DIR))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.manual_seed(args.seed)
    name = args.name or args.model
    corpus = Path(args.corpus)
    if not (corpus / "test" / "metadata.csv").is_file():
        _log(f"making demo corpus {corpus} (n={args.n})")
        make_corpus(corpus, args.n, args.seed)
    cache = Path(args.cache or corpus / f".features-{name}")
    cache.mkdir(parents=True, exist_ok=True)

    loaded = load_model(args.model, head="none")  # the head is what this fits
    model, processor = loaded.model.eval(), loaded.processor
    model.config.intensity_target = TARGET_NAMES[args.method]

    def split(s: str, gain) -> SpeechIntensityDataset:
        return SpeechIntensityDataset(load_rows(corpus, s), args.method, gain, args.seed)

    g = (-args.gain_db, args.gain_db)
    train = [cached_features(model, processor, split("train", None), 0, None, cache / "train0.npz")]
    for copy, n in enumerate(args.aug_clips, start=1):  # copy k: gains drawn for epoch k
        train.append(
            cached_features(model, processor, split("train", g), copy, n, cache / f"train{copy}.npz")
        )
    va = cached_features(model, processor, split("validation", None), 0, None, cache / "validation.npz")
    te = cached_features(model, processor, split("test", None), 0, None, cache / "test.npz")
    tr = {k: np.concatenate([t[k] for t in train]) for k in ("pooled", "logmel", "target")}

    fit = fit_head(model, tr["pooled"], tr["target"], va["pooled"], va["target"], seed=args.seed)
    with torch.no_grad():
        pred = model.head(torch.from_numpy(te["pooled"]).float()).numpy()
    head_m = regression(te["target"], pred)
    ridge = fit_ridge(tr["logmel"], tr["target"], va["logmel"], va["target"])
    base_m = regression(te["target"], ridge.predict(te["logmel"]))
    span = [float(te["target"].min()), float(te["target"].max())]
    _log(
        f"test: head RMSE {head_m.rmse:.3f} dB R² {head_m.r2:.4f} | baseline RMSE {base_m.rmse:.3f} dB R² {base_m.r2:.4f}"
    )

    card = {
        "model": args.model,
        "target": TARGET_NAMES[args.method],
        "units": "dBFS" if args.method == "rms" else "LUFS",
        "intensity_mean": model.config.intensity_mean,
        "intensity_std": model.config.intensity_std,
        "encoder": "frozen; head reads the last hidden state and the input mel level, mean-pooled over the clip's frames",
        "data": {
            "corpus": f"training.demo_corpus n={args.n} seed={args.seed} (espeak-ng; voices, rates, pitches vary)",
            "train_examples": len(tr["target"]),
            "train_gain_augmentation_db": [-args.gain_db, args.gain_db],
            "train_target_range_db": [float(tr["target"].min()), float(tr["target"].max())],
            "test_examples": len(te["target"]),
            "test_target_range_db": span,
        },
        "fit": fit,
        "test_metrics": asdict(head_m),
        "baseline_test_metrics": asdict(base_m) | {"alpha": ridge.alpha, "features": "log-mel stats (400)"},
        "command": "python -m training.make_heads " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    out = Path(args.out)
    save_head(model, out / f"{name}.safetensors", card)
    atomic_write_text(out / f"{name}.json", json.dumps(card, indent=2) + "\n")
    print(json.dumps({"head": asdict(head_m), "baseline": asdict(base_m), "test_span_db": span}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
