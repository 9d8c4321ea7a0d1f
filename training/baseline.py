"""The baseline intensity regressor: ridge regression on log-mel statistics.

Same splits, same gain augmentation and same metrics as the head, so the two numbers can be
read side by side (``--ckpt`` adds a model's head to the table).

    speechint baseline --dataset DEMO [--ckpt DIR|tiny.en]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from speechint_desktop.core.audio import AudioError
from speechint_desktop.core.catalog import ModelError
from speechint_desktop.core.fsutil import atomic_write_text
from training.data import DataError, SpeechIntensityDataset, check_rows, load_rows
from training.features import logmel_stats
from training.metrics import Regression, regression

ALPHAS = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)


@dataclass
class Ridge:
    """Closed-form ridge on standardised features; the intercept is not penalised."""

    mu: np.ndarray
    sigma: np.ndarray
    coef: np.ndarray
    intercept: float
    alpha: float

    @classmethod
    def fit(cls, X: np.ndarray, y: np.ndarray, alpha: float) -> Ridge:
        X = np.asarray(X, np.float64)
        y = np.asarray(y, np.float64)
        mu, sigma = X.mean(0), X.std(0)
        sigma[sigma < 1e-12] = 1.0
        Z = (X - mu) / sigma
        ym = y.mean()
        coef = np.linalg.solve(Z.T @ Z + alpha * np.eye(Z.shape[1]), Z.T @ (y - ym))
        return cls(mu, sigma, coef, float(ym), alpha)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return ((np.asarray(X, np.float64) - self.mu) / self.sigma) @ self.coef + self.intercept


def fit_ridge(Xtr, ytr, Xval, yval, alphas: Sequence[float] = ALPHAS) -> Ridge:
    """The alpha with the lowest validation RMSE, refitted on the training data."""
    best = min(alphas, key=lambda a: regression(yval, Ridge.fit(Xtr, ytr, a).predict(Xval)).rmse)
    return Ridge.fit(Xtr, ytr, best)


@dataclass
class SplitData:
    keys: list[str]
    audios: list[np.ndarray]
    targets: np.ndarray


def materialise(ds: SpeechIntensityDataset, copies: int = 1, log=print) -> SplitData:
    """Decode every utterance ``copies`` times (one epoch of gains each); skip unusable ones."""
    keys, audios, targets = [], [], []
    for c in range(copies):
        ds.set_epoch(c)
        for i in range(len(ds)):
            try:
                e = ds[i]
            except AudioError as err:
                if c == 0:
                    log(f"skipped: {err}")
                continue
            keys.append(e.key)
            audios.append(e.audio)
            targets.append(e.target)
    return SplitData(keys, audios, np.asarray(targets, np.float64))


@dataclass
class BaselineReport:
    alpha: float
    validation: Regression
    test: Regression


def run_baseline(
    train: SplitData, val: SplitData, test: SplitData
) -> tuple[Ridge, BaselineReport, np.ndarray]:
    feats = [np.stack([logmel_stats(a) for a in s.audios]) for s in (train, val, test)]
    model = fit_ridge(feats[0], train.targets, feats[1], val.targets)
    pred_val, pred_test = model.predict(feats[1]), model.predict(feats[2])
    rep = BaselineReport(model.alpha, regression(val.targets, pred_val), regression(test.targets, pred_test))
    return model, rep, pred_test


def side_by_side(rows: dict[str, Regression]) -> str:
    names = list(rows)
    lines = [f"{'':14}" + "".join(f"{n:>14}" for n in names)]
    for field, unit in (("rmse", " dB"), ("mae", " dB"), ("r2", ""), ("n", "")):
        cells = []
        for n in names:
            v = getattr(rows[n], field)
            cells.append(f"{v:>14d}" if field == "n" else f"{v:>11.3f}{unit:3}")
        lines.append(f"{field.upper() if field != 'r2' else 'R²':14}" + "".join(cells))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="speechint baseline", description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", required=True, help="audiofolder, CSV/JSONL manifest, or hub name")
    ap.add_argument("--train_split", default="train")
    ap.add_argument("--eval_split", default="validation")
    ap.add_argument("--test_split", default="test")
    ap.add_argument("--language", default=None)
    ap.add_argument("--intensity_method", choices=("rms", "lufs"), default="rms")
    ap.add_argument("--gain_db", type=float, default=20.0, help="training gain augmentation ±dB (0: off)")
    ap.add_argument("--train_copies", type=int, default=4, help="gain-augmented copies of the training set")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ckpt", default=None, help="a checkpoint folder or catalog name whose head to compare")
    ap.add_argument("--output", default=None, help="write the metrics as JSON here")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    gain = (-args.gain_db, args.gain_db) if args.gain_db > 0 else None

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    try:
        splits = {}
        for name, split, g, copies in (
            ("train", args.train_split, gain, args.train_copies if gain else 1),
            ("validation", args.eval_split, None, 1),
            ("test", args.test_split, None, 1),
        ):
            ds = SpeechIntensityDataset(
                load_rows(args.dataset, split, args.language), args.intensity_method, g, args.seed
            )
            splits[name] = materialise(check_rows(ds, log), copies, log)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    _, rep, _ = run_baseline(splits["train"], splits["validation"], splits["test"])
    table = {"baseline": rep.test}
    if args.ckpt:
        from training.evaluate import head_predictions, load_model

        try:
            model, processor = load_model(args.ckpt)
        except (OSError, ValueError, ModelError) as e:
            print(f"error: {args.ckpt}: {e}", file=sys.stderr)
            return 2
        pred = head_predictions(model, processor, splits["test"].audios)
        table["head"] = regression(splits["test"].targets, pred)
    t = splits["test"].targets
    print(
        f"test split {args.test_split!r}: {len(t)} utterances, target span {t.min():.1f} … {t.max():.1f} dB"
    )
    print(side_by_side(table))
    if args.output:
        doc = {k: asdict(v) for k, v in table.items()} | {
            "alpha": rep.alpha,
            "validation": asdict(rep.validation),
        }
        atomic_write_text(Path(args.output), json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
