"""Evaluation: WER and intensity RMSE/MAE/R² of a model, plus a per-utterance CSV.

One encoder pass per batch feeds the loss, the head and greedy decoding. Used by
``speechint evaluate`` and by the training loop's validation and test passes.

    speechint evaluate --ckpt OUTPUT_DIR|CHECKPOINT|tiny.en --dataset DEMO [--split test]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import math
import sys
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from transformers.modeling_outputs import BaseModelOutput

from speechint_desktop.core.catalog import ModelError
from speechint_desktop.core.fsutil import atomic_write_text
from speechint_desktop.core.model import load_model as core_load_model
from speechint_desktop.core.runs import metrics_record
from training.collate import Collator, model_inputs
from training.data import DataError, SpeechIntensityDataset, check_rows, load_rows
from training.metrics import Regression, regression


@dataclass
class Utterance:
    key: str
    reference: str
    hypothesis: str
    target: float
    prediction: float
    gain_db: float = 0.0


@dataclass
class EvalResult:
    loss: float
    asr_loss: float | None
    intensity_loss: float | None
    wer: float | None
    intensity: Regression
    utterances: list[Utterance] = field(default_factory=list)

    def summary(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k not in ("utterances", "intensity")}
        return d | {f"intensity_{k}": v for k, v in asdict(self.intensity).items()}


def load_model(ckpt: str, device: str | torch.device = "cpu"):
    """A training output folder (its best checkpoint), a checkpoint, or a catalog name (+ its shipped
    head): ``core.model.load_model``'s rule, in eval mode on ``device``."""
    loaded = core_load_model(ckpt, head="auto", device=device)
    return loaded.model.eval(), loaded.processor


def _cell(value: float | None, fmt: str, unit: str = "", why: str = "") -> str:
    if value is None or not math.isfinite(value):
        return "—" + (f"  ({why})" if why else "")
    return fmt.format(value) + (f" {unit}" if unit else "")


def format_summary(res: EvalResult, target: str = "rms_dbfs", title: str = "") -> str:
    """The evaluation as a table a person reads (no JSON, no NaN: a missing value says why)."""
    unit = "LU" if target == "lufs" else "dB"
    i = res.intensity
    rows = [
        (
            "Word error rate (WER)",
            _cell(None if res.wer is None else 100 * res.wer, "{:.1f}", "%", "not decoded"),
        ),
        (
            f"Intensity RMSE ({'LUFS' if target == 'lufs' else 'RMS dBFS'})",
            _cell(i.rmse, "{:.2f}", unit, "no clips"),
        ),
        ("Intensity mean abs. error", _cell(i.mae, "{:.2f}", unit, "no clips")),
        ("Intensity R²", _cell(i.r2, "{:.3f}", "", "the clips' levels do not vary")),
        ("Loss (total)", _cell(res.loss, "{:.4f}")),
        ("Loss (transcript)", _cell(res.asr_loss, "{:.4f}", "", "not computed")),
        ("Loss (intensity)", _cell(res.intensity_loss, "{:.4f}", "", "not computed")),
        ("Utterances", str(i.n)),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [title] if title else []
    lines += [f"  {name:<{width}}  {value}" for name, value in rows]
    return "\n".join(lines)


def quiet_generation() -> None:
    """transformers 5.24 logs a deprecation warning on every generate() call."""
    warnings.filterwarnings("ignore", module="transformers")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


@torch.inference_mode()
def head_predictions(model, processor, audios: Sequence[np.ndarray], batch_size: int = 8) -> np.ndarray:
    """The head's intensity (raw units) for each clip."""
    from training.features import pooled_encoder_features

    pooled = pooled_encoder_features(model, processor, audios, batch_size)
    return model.head(torch.from_numpy(pooled).to(next(model.parameters()).device)).float().cpu().numpy()


@torch.inference_mode()
def evaluate(
    model,
    processor,
    dataset: SpeechIntensityDataset,
    batch_size: int = 8,
    lambda_intensity: float = 1.0,
    with_wer: bool = True,
    language: str | None = None,
    max_new_tokens: int = 128,
    progress=None,
) -> EvalResult:
    """Loss parts, WER (core.text normaliser) and intensity metrics over ``dataset``."""
    quiet_generation()
    model.eval()
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    collate = Collator(processor, model.config.decoder_start_token_id)
    dl = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate)
    utts: list[Utterance] = []
    losses: dict[str, list[float]] = {"loss": [], "asr_loss": [], "intensity_loss": []}
    for batch in dl:
        inputs = {k: v.to(device) for k, v in model_inputs(batch).items()}
        inputs["input_features"] = inputs["input_features"].to(dtype)
        out = model(**inputs, lambda_intensity=lambda_intensity)
        n = len(batch["keys"])
        for k in losses:
            v = getattr(out, k)
            if v is not None:
                losses[k].append(float(v) * n)
        hyps = [""] * n
        if with_wer:
            enc = BaseModelOutput(last_hidden_state=out.encoder_last_hidden_state)
            gen_kw = {"max_new_tokens": max_new_tokens}
            if language and getattr(model.generation_config, "is_multilingual", False):
                gen_kw |= {"language": language, "task": "transcribe"}
            ids = model.generate(encoder_outputs=enc, **gen_kw)
            ids = ids.sequences if hasattr(ids, "sequences") else ids
            hyps = processor.tokenizer.batch_decode(ids, skip_special_tokens=True)
        for i in range(n):
            utts.append(
                Utterance(
                    batch["keys"][i],
                    batch["texts"][i],
                    hyps[i].strip(),
                    float(batch["intensity_labels"][i]),
                    float(out.intensity[i]),
                    float(batch["gains"][i]),
                )
            )
        if progress:
            progress(len(utts), len(dataset))
    total = max(1, len(utts))

    def mean(k: str) -> float | None:
        return sum(losses[k]) / total if losses[k] else None

    wer = None
    if with_wer and utts:
        from speechint_desktop.core.text import wer as corpus_wer

        lang = language or "en"
        wer = corpus_wer([u.reference for u in utts], [u.hypothesis for u in utts], language=lang)
    reg = regression([u.target for u in utts], [u.prediction for u in utts])
    loss = mean("loss")
    return EvalResult(
        loss if loss is not None else math.nan, mean("asr_loss"), mean("intensity_loss"), wer, reg, utts
    )


def write_utterances_csv(path: str | Path, utts: Sequence[Utterance]) -> Path:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["key", "reference", "hypothesis", "target", "prediction", "error", "gain_db"])
    for u in utts:
        w.writerow(
            [
                u.key,
                u.reference,
                u.hypothesis,
                f"{u.target:.3f}",
                f"{u.prediction:.3f}",
                f"{u.prediction - u.target:.3f}",
                f"{u.gain_db:.3f}",
            ]
        )
    return atomic_write_text(path, buf.getvalue())


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="speechint evaluate", description=__doc__.splitlines()[0])
    ap.add_argument(
        "--ckpt", required=True, help="training output folder, checkpoint folder, or catalog name"
    )
    ap.add_argument("--dataset", required=True, help="audiofolder, CSV/JSONL manifest, or hub name")
    ap.add_argument("--split", "--test_split", dest="split", default="test")
    ap.add_argument("--language", default=None)
    ap.add_argument(
        "--intensity_method", choices=("rms", "lufs"), default=None, help="default: the model's target"
    )
    ap.add_argument("--batch_size", type=int, default=8)
    ap.add_argument("--no_wer", action="store_true", help="intensity only (no decoding)")
    ap.add_argument("--max_new_tokens", type=int, default=128)
    ap.add_argument("--output", default=None, help="per-utterance CSV (default: ./eval-<split>.csv)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON instead of a table")
    ap.add_argument("--summary", default=None, help="also write the summary as JSON to this file")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet_generation()
    try:
        rows = load_rows(args.dataset, args.split, args.language)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        model, processor = load_model(args.ckpt, args.device)
    except (OSError, ValueError, ModelError) as e:
        print(f"error: {args.ckpt}: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    method = args.intensity_method or ("lufs" if model.config.intensity_target == "lufs" else "rms")
    try:
        ds = check_rows(SpeechIntensityDataset(rows, method), lambda m: print(m, file=sys.stderr))
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    res = evaluate(
        model,
        processor,
        ds,
        args.batch_size,
        with_wer=not args.no_wer,
        language=args.language,
        max_new_tokens=args.max_new_tokens,
        progress=lambda d, t: print(f"\r{d}/{t}", end="", file=sys.stderr, flush=True),
    )
    print(file=sys.stderr)
    out = Path(args.output or f"eval-{args.split}.csv")
    write_utterances_csv(out, res.utterances)
    if not model.head_trained:
        print(
            "note: this model's intensity head is untrained; its intensity numbers mean nothing",
            file=sys.stderr,
        )
    summary = {k: v for k, v in metrics_record("evaluation", 0, **res.summary()).items() if k != "step"}
    summary |= {
        "checkpoint": str(args.ckpt),
        "dataset": str(args.dataset),
        "split": args.split,
        "target": model.config.intensity_target,
        "utterances_csv": str(out),
    }
    if args.summary:
        atomic_write_text(args.summary, json.dumps(summary, indent=2) + "\n")
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        name = Path(args.ckpt).name or str(args.ckpt)
        title = (
            f"Evaluation of {name} on {Path(args.dataset).name} ({args.split}, {res.intensity.n} utterances)"
        )
        print(format_summary(res, model.config.intensity_target, title))
    print(f"per-utterance results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
