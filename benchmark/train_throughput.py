"""CPU training throughput (samples/s) of tiny.en: head-only (frozen body) vs full multi-task.

Times the training loop's own step (collate → forward → backward → AdamW) on demo-corpus
clips after one warm-up step, and prints samples/s for each mode and their ratio.

    python benchmark/train_throughput.py [--model tiny.en] [--batch_size 4] [--steps 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from speechint_desktop.core.model import load_model  # noqa: E402
from training.collate import Collator, model_inputs  # noqa: E402
from training.data import SpeechIntensityDataset, load_rows  # noqa: E402
from training.demo_corpus import make_corpus  # noqa: E402


def throughput(model, batches, head_only: bool) -> float:
    for p in model.parameters():
        p.requires_grad = not head_only
    for p in model.intensity_head.parameters():
        p.requires_grad = True
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    model.train()
    if head_only:
        model.model.eval()
    n, t0 = 0, 0.0
    for i, batch in enumerate(batches):
        if i == 1:  # the first step warms up kernels and allocations
            t0, n = time.perf_counter(), 0
        inputs = model_inputs(batch)
        if head_only:
            inputs.pop("labels")
        out = model(**inputs)
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        n += len(batch["keys"])
    return n / (time.perf_counter() - t0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny.en")
    ap.add_argument("--batch_size", type=int, default=4)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per mode (after one warm-up step)")
    args = ap.parse_args(argv)
    loaded = load_model(args.model)  # the same model, with its head, as training starts from
    model, processor = loaded.model, loaded.processor
    collate = Collator(processor, model.config.decoder_start_token_id)
    with tempfile.TemporaryDirectory() as tmp:
        n = max(3, (args.steps + 1) * args.batch_size + 2)
        make_corpus(Path(tmp) / "c", n=int(n / 0.8) + 1)
        ds = SpeechIntensityDataset(load_rows(Path(tmp) / "c", "train"), "rms", (-20, 20))
        items = [ds[i] for i in range(len(ds))]
    bs = args.batch_size
    batches = [collate(items[i * bs : (i + 1) * bs]) for i in range(args.steps + 1)]
    print(
        f"{args.model}, batch {bs}, {torch.get_num_threads()} threads, mean clip "
        f"{sum(len(e.audio) for e in items) / len(items) / 16000:.1f} s"
    )
    head = throughput(model, batches, head_only=True)
    print(f"head-only (encoder+decoder frozen): {head:7.2f} samples/s")
    full = throughput(model, batches, head_only=False)
    print(f"full multi-task (CE + λ·MSE):       {full:7.2f} samples/s")
    print(f"ratio head-only / full: {head / full:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
