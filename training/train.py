"""Multi-task fine-tuning: Whisper ASR + the intensity head, loss = CE + λ·MSE(standardised).

Read it top to bottom: arguments → data → model → optimizer → (resume) → loop with
validation and checkpoints → test. 🤗 Accelerate handles the device, mixed precision and
distribution, so the same file runs on one CPU, one GPU, or ``accelerate launch`` on many.

    python -m training.train --dataset DEMO --output_dir runs/x [--head_only] [--resume]
    accelerate launch --num_processes 2 --cpu -m training.train ...
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Sampler

from speechint_desktop.core import runs
from speechint_desktop.core.catalog import ModelError
from speechint_desktop.core.model import load_model
from training.checkpoint import (
    TrainState,
    latest_checkpoint,
    load_training_state,
    save_checkpoint,
)
from training.collate import Collator, model_inputs
from training.data import DataError, SpeechIntensityDataset, check_rows, load_rows, measure_target
from training.metrics import MetricsLog

TARGET_NAMES = {"rms": "rms_dbfs", "lufs": "lufs"}
LOWER_IS_BETTER = {"loss": True, "wer": True, "intensity_rmse": True, "intensity_r2": False}


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="speechint train", description=__doc__.splitlines()[0])
    a = ap.add_argument
    a("--model", default="tiny.en", help="catalog name, model folder, or hub id")
    a(
        "--dataset",
        required=True,
        help="audiofolder, CSV/JSONL manifest, or hub name (e.g. openslr/librispeech_asr)",
    )
    a("--train_split", default="train")
    a("--eval_split", default="validation")
    a("--test_split", default="test")
    a("--language", default=None, help="language code (multilingual models, Common Voice config)")
    a("--intensity_method", choices=("rms", "lufs"), default="rms")
    a("--gain_db", type=float, default=20.0, help="gain augmentation range ±dB on training audio (0: off)")
    a("--epochs", type=float, default=3)
    a("--max_steps", type=int, default=0, help="stop after this many optimizer steps (overrides --epochs)")
    a("--batch_size", type=int, default=8)
    a("--grad_accum", type=int, default=1)
    a("--lr", type=float, default=1e-5)
    a("--head_lr", type=float, default=1e-3, help="learning rate of the intensity head")
    a("--warmup_steps", type=int, default=0)
    a("--lambda_intensity", type=float, default=1.0)
    a("--fp16", action="store_true")
    a("--bf16", action="store_true")
    a("--seed", type=int, default=42)
    a("--output_dir", required=True)
    a("--eval_every", type=int, default=0, help="validate every N steps (default: once per epoch)")
    a("--save_every", type=int, default=0, help="checkpoint every N steps (default: with each validation)")
    a("--log_every", type=int, default=1)
    a("--best_metric", choices=tuple(LOWER_IS_BETTER), default="loss")
    a("--freeze_encoder", action="store_true", help="train the decoder and the head; the encoder stays fixed")
    a("--head_only", action="store_true", help="train only the intensity head (no ASR loss)")
    a(
        "--head",
        default="auto",
        help="initial head: a .safetensors file, 'auto' (the catalog's shipped head) or 'none'",
    )
    a("--no_wer", action="store_true", help="skip decoding during validation (the test pass always decodes)")
    a("--max_new_tokens", type=int, default=128, help="decoding limit for WER")
    a("--resume", action="store_true", help="continue from OUTPUT_DIR's latest checkpoint")
    a("--num_workers", type=int, default=0)
    a("--cpu", action="store_true", help="train on the CPU even when a GPU is available")
    return ap


class EpochPermutation(Sampler):
    """A seeded shuffle per epoch: the order depends only on (seed, epoch), so resuming is exact."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())


def target_stats(ds: SpeechIntensityDataset, gain_db: float, limit: int = 500) -> tuple[float, float]:
    """Mean/std of the training target (a sample), widened by the uniform gain's variance."""
    vals = []
    step = max(1, len(ds.rows) // limit)
    from training.data import decode_row

    for row in ds.rows[::step]:
        v = row.intensity if row.intensity is not None else measure_target(decode_row(row), ds.method)
        if v is not None:
            vals.append(v)
    t = torch.tensor(vals, dtype=torch.float64)
    var = float(t.var()) if len(vals) > 1 else 1.0
    if gain_db > 0 and all(r.intensity is None for r in ds.rows):
        var += gain_db**2 / 3
    return float(t.mean()), max(1.0, math.sqrt(var))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from transformers import get_linear_schedule_with_warmup

    from training.evaluate import evaluate, quiet_generation, write_utterances_csv

    quiet_generation()
    out_dir = Path(args.output_dir)
    mp = "fp16" if args.fp16 else "bf16" if args.bf16 else "no"
    # With no GPU, tell accelerate so: under `accelerate launch --multi_gpu` / torchrun it then
    # runs the processes as MULTI_CPU over gloo instead of each one training alone.
    accel = torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available())
    mps = getattr(torch.backends, "mps", None)
    accel = accel or (mps is not None and mps.is_available())
    accelerator = Accelerator(mixed_precision=mp, cpu=args.cpu or not accel)
    main_proc = accelerator.is_main_process
    set_seed(args.seed)

    def log(msg: str) -> None:
        if main_proc:
            print(msg, file=sys.stderr, flush=True)

    # ---- data ---------------------------------------------------------------------------
    gain = (-args.gain_db, args.gain_db) if args.gain_db > 0 else None
    try:
        train_ds = check_rows(
            SpeechIntensityDataset(
                load_rows(args.dataset, args.train_split, args.language),
                args.intensity_method,
                gain,
                args.seed,
            ),
            log,
        )
        eval_ds = check_rows(
            SpeechIntensityDataset(
                load_rows(args.dataset, args.eval_split, args.language), args.intensity_method
            ),
            log,
        )
        test_ds = None
        if args.test_split:
            test_ds = check_rows(
                SpeechIntensityDataset(
                    load_rows(args.dataset, args.test_split, args.language), args.intensity_method
                ),
                log,
            )
    except DataError as e:
        log(f"error: {e}")
        return 2

    # ---- model (from the latest checkpoint when resuming) -------------------------------
    resume_from = latest_checkpoint(out_dir) if args.resume else None
    if args.resume and resume_from is None:
        log(f"no checkpoint in {out_dir}: starting from scratch")
    if not args.resume and latest_checkpoint(out_dir) is not None:
        log(
            f"error: {out_dir} holds checkpoints of an earlier run: pass --resume or choose another --output_dir"
        )
        return 2
    if resume_from is None and main_proc and (out_dir / "metrics.jsonl").exists():
        (out_dir / "metrics.jsonl").unlink()  # a fresh run: the plot starts empty
    head = "none" if resume_from is not None or args.head == "none" else args.head
    try:
        loaded = load_model(resume_from or args.model, head=head)
    except (OSError, ValueError, ModelError) as e:
        log(f"error: {args.model}: {str(e).splitlines()[0]}")
        return 2
    model, processor = loaded.model, loaded.processor
    if args.language and hasattr(processor.tokenizer, "set_prefix_tokens"):
        processor.tokenizer.set_prefix_tokens(language=args.language, task="transcribe")
    if loaded.head_note:
        log(f"shipped head not used: {loaded.head_note}")
    if resume_from is None:
        if loaded.head_file is not None:
            log(f"head initialised from {loaded.head_file}")
        if not model.head_trained or model.config.intensity_target != TARGET_NAMES[args.intensity_method]:
            mean, std = target_stats(train_ds, args.gain_db)
            model.config.intensity_target = TARGET_NAMES[args.intensity_method]
            model.config.intensity_mean, model.config.intensity_std = mean, std
            log(f"target standardisation: mean {mean:.2f}, std {std:.2f}")
    model.config.intensity_head_trained = True  # what gets saved has been trained on this target

    for p in model.parameters():
        p.requires_grad = not args.head_only
    if args.freeze_encoder or args.head_only:
        for p in model.model.encoder.parameters():
            p.requires_grad = False
    for p in model.intensity_head.parameters():
        p.requires_grad = True
    lam = args.lambda_intensity

    # ---- optimizer, schedule, loader ----------------------------------------------------
    head_params = list(model.intensity_head.parameters())
    head_ids = {id(p) for p in head_params}
    body = [p for p in model.parameters() if p.requires_grad and id(p) not in head_ids]
    groups = [{"params": head_params, "lr": args.head_lr}]
    if body:
        groups.append({"params": body, "lr": args.lr})
    optimizer = torch.optim.AdamW(groups, weight_decay=0.0)
    sampler = EpochPermutation(len(train_ds), args.seed)
    collate = Collator(processor, model.config.decoder_start_token_id)
    train_dl = DataLoader(
        train_ds,
        batch_size=args.batch_size,
        sampler=sampler,
        collate_fn=collate,
        num_workers=args.num_workers,
    )
    model, optimizer, train_dl = accelerator.prepare(model, optimizer, train_dl)
    steps_per_epoch = max(1, math.ceil(len(train_dl) / args.grad_accum))
    total_steps = args.max_steps or max(1, math.ceil(args.epochs * steps_per_epoch))
    scheduler = get_linear_schedule_with_warmup(optimizer, args.warmup_steps, total_steps)
    eval_every = args.eval_every or steps_per_epoch
    save_every = args.save_every or eval_every

    state = TrainState()
    if resume_from is not None:
        state = load_training_state(resume_from, optimizer, scheduler)
        log(
            f"resumed from {resume_from.name}: step {state.step}, epoch {state.epoch}, batch {state.batch_in_epoch}"
        )
        if main_proc:  # drop the records the killed run wrote after it
            runs.truncate_metrics(out_dir, state.step)
    metrics = MetricsLog(out_dir) if main_proc else None
    if metrics is not None and resume_from is None:
        metrics.log(
            "config",
            0,
            **{k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool))},
            total_steps=total_steps,
            train_size=len(train_ds),
            processes=accelerator.num_processes,
        )

    def run_eval(ds, split: str, csv: bool = False) -> float | None:
        """Main process only; returns the value of the best-checkpoint metric."""
        value = None
        if main_proc:
            res = evaluate(
                accelerator.unwrap_model(model),
                processor,
                ds,
                args.batch_size,
                lam,
                with_wer=split == "test" or not (args.no_wer or args.head_only),
                max_new_tokens=args.max_new_tokens,
                language=args.language,
            )
            rec = metrics.log(split, state.step, epoch=state.epoch, **res.summary())
            log(" ".join(f"{k}={v:.4g}" for k, v in rec.items() if isinstance(v, float) and k != "time"))
            if csv:
                write_utterances_csv(out_dir / f"{split}_predictions.csv", res.utterances)
            key = {
                "loss": "loss",
                "wer": "wer",
                "intensity_rmse": "intensity_rmse",
                "intensity_r2": "intensity_r2",
            }
            value = rec.get(key[args.best_metric])
        accelerator.wait_for_everyone()
        model.train()
        return value

    def save(value: float | None) -> None:
        is_best = False
        if value is not None and math.isfinite(value):
            better = (lambda a, b: a < b) if LOWER_IS_BETTER[args.best_metric] else (lambda a, b: a > b)
            if state.best_metric is None or better(value, state.best_metric):
                state.best_metric, state.best_step, is_best = value, state.step, True
        if main_proc:
            save_checkpoint(
                out_dir,
                accelerator.unwrap_model(model),
                processor,
                optimizer,
                scheduler,
                state,
                is_best=is_best,
            )
        accelerator.wait_for_everyone()

    # ---- the loop -----------------------------------------------------------------------
    model.train()
    if args.head_only:
        accelerator.unwrap_model(model).model.eval()  # frozen body: no dropout noise in the features
    t_last, samples_last = time.monotonic(), state.samples_seen
    done = state.step >= total_steps
    epoch = state.epoch
    while not done:
        train_dl.set_epoch(epoch)  # accelerate's loader re-sets its sampler's epoch on every iteration
        train_ds.set_epoch(epoch)
        skip = state.batch_in_epoch if epoch == state.epoch else 0
        if skip >= len(train_dl):
            epoch, state.epoch, state.batch_in_epoch = epoch + 1, epoch + 1, 0
            continue
        loader = accelerator.skip_first_batches(train_dl, skip) if skip else train_dl
        n_batches = len(train_dl)
        for i, batch in enumerate(loader, start=skip):
            inputs = model_inputs(batch)
            if args.head_only:
                inputs.pop("labels")
            last_micro = (i + 1) % args.grad_accum == 0 or i + 1 == n_batches
            ctx = accelerator.no_sync(model) if not last_micro else _null()
            with ctx, accelerator.autocast():
                out = model(**inputs, lambda_intensity=lam)
                accelerator.backward(out.loss / args.grad_accum)
            state.batch_in_epoch = i + 1
            state.samples_seen += len(batch["keys"]) * accelerator.num_processes
            if not last_micro:
                continue
            accelerator.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            state.step += 1
            state.epoch = epoch

            if args.log_every and state.step % args.log_every == 0:
                parts = {k: getattr(out, k) for k in ("loss", "asr_loss", "intensity_loss")}
                parts = {
                    k: accelerator.reduce(v.detach(), "mean").item()
                    for k, v in parts.items()
                    if v is not None
                }
                now = time.monotonic()
                rate = (state.samples_seen - samples_last) / max(now - t_last, 1e-9)
                t_last, samples_last = now, state.samples_seen
                if main_proc:
                    metrics.log(
                        "train",
                        state.step,
                        epoch=epoch,
                        lr=scheduler.get_last_lr()[-1],
                        samples_per_s=rate,
                        samples_seen=state.samples_seen,
                        **parts,
                    )
            at_epoch_end = i + 1 == n_batches
            last = state.step >= total_steps
            value = None
            if state.step % eval_every == 0 or last:
                value = run_eval(eval_ds, "validation")
            if state.step % save_every == 0 or last:
                if at_epoch_end:
                    state.epoch, state.batch_in_epoch = epoch + 1, 0
                save(value)
            if state.step >= total_steps:
                done = True
                break
        if done:
            break
        epoch += 1
        state.epoch, state.batch_in_epoch = epoch, 0

    # ---- test with the final weights ----------------------------------------------------
    if test_ds is not None and len(test_ds):
        run_eval(test_ds, "test", csv=True)
    if main_proc:
        metrics.log("done", state.step, best_step=state.best_step, best_metric=state.best_metric)
        metrics.close()
        log(f"done: {state.step} steps; checkpoints in {out_dir / 'checkpoints'}")
    accelerator.end_training()
    return 0


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


if __name__ == "__main__":
    sys.exit(main())
