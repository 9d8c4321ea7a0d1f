"""Train the voice-level head: the clean voice's level read through noise and reverberation.

The encoder stays frozen, so each mixture costs one encoder pass (its pooled head inputs are
cached per chunk of mixtures and reused by later runs with the same seed), and the small head
is then fitted on the cached features in seconds (``make_heads.fit_head``: ridge start, AdamW,
best validation weights). The head's target is named in its metadata and card
(``voice_asl_dbfs`` or ``voice_rms_dbfs``); held-out real speech mixed with a held-out real
noise measures it against the meter (``benchmark/voice_level.py`` prints the same table).

    python -m training.voice_head --model tiny.en                   # the shipped head
    python -m training.voice_head --speech CLEAN/ --noise NOISE/ --out heads/ --name mine
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from speechint_desktop.core import catalog, voice
from speechint_desktop.core.fsutil import atomic_write_text
from speechint_desktop.core.model import WhisperForASRAndIntensity, save_head
from training import voice_mix as vm
from training.metrics import regression

REPO = Path(__file__).resolve().parents[1]
HEADS_DIR = REPO / "resources" / "heads"


@dataclass
class VoiceHeadConfig:
    model: str = "tiny.en"
    target: str = "asl"  # asl | rms
    speech: list[str] | None = None  # clean-speech folders (default: shared real speech)
    noise: list[str] | None = None  # noise folders (default: shared real noise)
    rir: list[str] | None = None
    espeak: int = 200  # espeak-ng utterances added to the clean speech
    mixtures: int = 1200
    chunk: int = 100  # mixtures per cached feature file
    steps: int = 1000
    lr: float = 1e-3
    seed: int = 0
    cache: str | None = None
    out: str = str(HEADS_DIR)
    name: str | None = None
    heldout: bool = True  # evaluate on the shared held-out speech and noise
    level_only: bool = False  # no encoder passes (the fitted level path does not read the states)
    metrics: str | None = None  # metrics.jsonl for live curves (the app's training tab reads it)
    extra: dict = field(default_factory=dict)


def _log_default(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


class Stopped(Exception):
    """The user stopped training; nothing is written."""


def load(model_name: str):
    from transformers import WhisperProcessor

    path = model_name if Path(model_name).is_dir() else catalog.resolve(model_name)
    model = WhisperForASRAndIntensity.from_pretrained(path).eval()
    return model, WhisperProcessor.from_pretrained(path)


def fit_voice_head(
    model, Xtr, ytr, Xval, yval, steps: int = 1000, lr: float = 1e-3, alpha: float = 0.1, on_step=None
) -> dict:
    """Fit the head's level path on the frames' level statistics (``core.model.STAT_POWERS``).

    Closed-form ridge on the loudest-power-mean level and each statistic's offset from it (a
    gain moves them all by the gain, so the prediction moves by exactly the gain), then AdamW on
    the same weights with the best validation weights kept (the live curves). The MLP over the
    encoder's states stays at zero: fitted on one real speaker and espeak-ng voices it read the
    speaker instead of the level on held-out real voices (README, "voice level").
    """
    from speechint_desktop.core.model import N_STATS, STAT_POWERS, IntensityHead
    from training.make_heads import ridge_fit

    c = model.config
    head = IntensityHead(c.d_model, int(c.intensity_hidden), c.num_mel_bins, N_STATS)
    model.intensity_head = head
    c.intensity_level_stats = N_STATS
    mean, std = float(ytr.mean()), float(ytr.std())
    c.intensity_mean, c.intensity_std = mean, std
    xt, xv = torch.from_numpy(Xtr).float(), torch.from_numpy(Xval).float()
    zt = torch.from_numpy((ytr - mean) / std).float()
    m2 = 2 * c.num_mel_bins
    i1 = STAT_POWERS.index(1.0)
    with torch.no_grad():
        st = head.level(xt)[:, m2:].double()
        others = [i for i in range(N_STATS) if i != i1]
        feats = torch.cat([st[:, i1 : i1 + 1], st[:, others] - st[:, i1 : i1 + 1]], dim=1)
        w, b = ridge_fit(feats.float(), zt, alpha)
        w_st = torch.zeros(N_STATS)
        w_st[others] = w[1:]
        w_st[i1] = w[0] - w[1:].sum()
        head.skip.weight.zero_()
        head.skip.weight[0, m2:] = w_st
        head.skip.bias.fill_(b)
        head.fc2.weight.zero_()
        head.fc2.bias.zero_()
        best = (regression(yval, model.head(xv).numpy()).rmse, head.skip.weight.clone(), float(b), 0)
    mask = torch.zeros_like(head.skip.weight)
    mask[0, m2:] = 1.0
    opt = torch.optim.AdamW(head.skip.parameters(), lr=lr, weight_decay=0.0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for step in range(1, steps + 1):
            loss = torch.nn.functional.mse_loss(head(xt), zt)
            opt.zero_grad()
            loss.backward()
            head.skip.weight.grad *= mask
            opt.step()
            if step % 50 == 0 or step == steps:
                with torch.no_grad():
                    rmse = regression(yval, model.head(xv).numpy()).rmse
                if rmse < best[0]:
                    best = (rmse, head.skip.weight.detach().clone(), float(head.skip.bias.detach()), step)
                if on_step is not None:
                    on_step(step, float(loss.detach()), float(rmse))
    finally:
        torch.set_num_threads(threads)
    with torch.no_grad():
        head.skip.weight.copy_(best[1])
        head.skip.bias.fill_(best[2])
    head.eval()
    c.intensity_head_trained = True
    # dB of prediction per dB of each generalised-mean level (they sum to 1: gain in, gain out)
    levels = best[1][0, m2:].tolist()
    weights = {f"p^{k:g}": round(v / 4 * std / 10, 4) for k, v in zip(STAT_POWERS, levels, strict=True)}
    return {
        "best_step": best[3],
        "val_rmse": best[0],
        "steps": steps,
        "lr": lr,
        "ridge_alpha": alpha,
        "level_weights": weights,
    }


def heldout_table(
    model,
    processor,
    items: list[vm.HeldOut],
    cache: Path | None = None,
    predictions=None,
    level_only=False,
    fused=None,
) -> dict:
    """Per SNR (and clean re-gained): RMSE of the head (or of ``predictions``, one per item),
    of the voice level (the head checked against the mix's P.56 level, ``core.voice``; or
    ``fused``, one per item) and of the meter's readings of the mix against the clean voice's level.

    A prediction may be missing (NaN: the engine found no speech, so no number): then every
    column covers the ``head_n`` items that got one, out of ``n``, so the head and the meters
    are compared on the same items (None when none got a number)."""
    if predictions is None:
        pooled = vm.cached_pooled(model, processor, [h.audio for h in items], cache, level_only=level_only)
        with torch.no_grad():
            pred = model.head(torch.from_numpy(pooled).float()).numpy()
    else:
        pred = np.asarray(predictions, dtype=float)
    if fused is None and model is not None and model.config.intensity_target in voice.FUSION_TARGETS:
        tau = model.config.intensity_fusion_tau_db
        fused = [voice.fused_level(v, h.mix_asl_dbfs, tau) for v, h in zip(pred, items, strict=True)]
    fused = None if fused is None else np.array([np.nan if v is None else v for v in fused], dtype=float)
    rows = {}
    keys = sorted({h.snr_db for h in items if h.snr_db is not None}) + [None]
    for snr in keys:
        every = [i for i, h in enumerate(items) if h.snr_db == snr]
        if not every:
            continue
        idx = [i for i in every if np.isfinite(pred[i])]
        t = np.array([items[i].target for i in idx])

        def rmse(v, t=t):
            v = np.asarray(v, dtype=float)
            return float(np.sqrt(np.mean((v - t) ** 2))) if len(t) else None

        rows["clean re-gained" if snr is None else f"{snr:g}"] = {
            "n": len(every),
            "head_n": len(idx),
            "head_rmse": rmse(pred[idx]),
            "head_bias": float(np.mean(pred[idx] - t)) if idx else None,
            "voice_rmse": None if fused is None else rmse(fused[idx]),
            "voice_bias": None if fused is None or not idx else float(np.mean(fused[idx] - t)),
            "mix_rms_rmse": rmse([items[i].mix_rms_dbfs for i in idx]),
            "mix_lufs_rmse": rmse([np.nan if items[i].mix_lufs is None else items[i].mix_lufs for i in idx]),
            "mix_asl_rmse": rmse([items[i].mix_asl_dbfs for i in idx]),
        }
    return rows


def format_table(rows: dict, target: str) -> str:
    """A Markdown table; ``n`` says how many items got no head number (left out of every
    column), when some did not."""
    fused = any(r.get("voice_rmse") is not None for r in rows.values())
    lines = [
        f"| SNR (dB) | n |{' voice level RMSE |' if fused else ''} head RMSE | mix RMS RMSE | mix LUFS RMSE"
        f" | mix P.56 ASL RMSE |  (vs clean voice {target})",
        "|---|---|" + ("---|" if fused else "") + "---|---|---|---|",
    ]

    def num(v):
        return "n/a" if v is None else f"{v:.2f}"

    def cell(rmse, bias, bold):
        if rmse is None:
            return "n/a"
        return (f"**{rmse:.2f}**" if bold else f"{rmse:.2f}") + f" (bias {bias:+.2f})"

    for k, r in rows.items():
        n, missing = r["n"], r["n"] - r.get("head_n", r["n"])
        count = f"{n}, {missing} without a number" if missing else f"{n}"
        # bold: the number the analysis reports
        head = cell(r["head_rmse"], r["head_bias"], bold=not fused)
        if fused:
            head = cell(r.get("voice_rmse"), r.get("voice_bias"), bold=True) + " | " + head
        lines.append(
            f"| {k} | {count} | {head} | {num(r['mix_rms_rmse'])}"
            f" | {num(r['mix_lufs_rmse'])} | {num(r['mix_asl_rmse'])} |"
        )
    return "\n".join(lines)


def _sources_key(cfg: VoiceHeadConfig) -> str:
    """What the cached features depend on: model, target, seed, espeak count and every source
    file (path, size, mtime), so other data never reuses them."""
    import hashlib

    files = []
    for dirs in (cfg.speech, cfg.noise, cfg.rir):
        for d in dirs or ["<shared>"]:
            if d == "<shared>":
                files.append(d)
                continue
            for f in vm.audio_files(d):
                st = f.stat()
                files.append(f"{f}:{st.st_size}:{st.st_mtime_ns}")
    key = json.dumps([str(Path(cfg.model)), cfg.target, cfg.seed, cfg.espeak, files])
    return hashlib.sha1(key.encode()).hexdigest()[:12]


def train_voice_head(
    cfg: VoiceHeadConfig,
    log: Callable[[str], None] = _log_default,
    progress: Callable[[float, str], None] | None = None,
    metric: Callable[[str, int, float], None] | None = None,
    stop=None,
) -> dict:
    """Make mixtures, cache their encoder features, fit the head, evaluate, write head + card.

    ``metric(name, step, value)`` receives ``train_loss`` and ``intensity_rmse`` (validation)
    as the fit goes, for live curves; ``stop.is_set()`` stops between chunks and fit steps.
    Returns the card.
    """
    progress = progress or (lambda f, m: None)
    if cfg.metrics:
        metric = _jsonl_metric(Path(cfg.metrics), metric)
    target_name = vm.TARGETS[cfg.target]
    name = cfg.name or Path(cfg.model).name
    model, processor = load(cfg.model)
    model.config.intensity_target = target_name
    # encoder features are per model, target and seed; never beside the heads (resources/ ships)
    default_cache = Path(tempfile.gettempdir()) / "speechint-voice-head" / f"{name}-{_sources_key(cfg)}"
    cache = Path(cfg.cache) if cfg.cache else default_cache
    cache.mkdir(parents=True, exist_ok=True)
    log(f"sources: speech {cfg.speech or 'shared real speech'}, noise {cfg.noise or 'shared real noise'}")
    src = vm.training_sources(cfg.speech, cfg.noise, cfg.rir, cfg.espeak, cfg.seed, log=log)
    log(
        f"{len(src.speech)} clean utterances ({src.real_speech} real), {len(src.noise)} noise recordings,"
        f" {len(src.rirs)} RIRs"
    )
    feats, targets, clean = [], [], []
    n_chunks = max(1, -(-cfg.mixtures // cfg.chunk))
    t0 = time.monotonic()
    for c in range(n_chunks):
        if stop is not None and stop.is_set():
            raise Stopped("stopped")
        n = min(cfg.chunk, cfg.mixtures - c * cfg.chunk)
        mixes = vm.draw_mixtures(src, n, seed=cfg.seed * 100003 + c, target=cfg.target)
        f = cache / f"chunk{c:04d}-{n}.npy"
        feats.append(
            vm.cached_pooled(model, processor, [m.audio for m in mixes], f, level_only=cfg.level_only)
        )
        targets.append(np.array([m.target for m in mixes]))
        clean.append(np.array([m.snr_db is None for m in mixes]))
        done = (c + 1) / n_chunks
        progress(0.8 * done, f"encoder features {sum(len(t) for t in targets)}/{cfg.mixtures}")
        log(f"features: chunk {c + 1}/{n_chunks} ({time.monotonic() - t0:.0f} s)")
    X, y = np.concatenate(feats), np.concatenate(targets)
    rng = np.random.default_rng(cfg.seed)
    order = rng.permutation(len(y))
    n_val = max(1, len(y) // 10)
    va, tr = order[:n_val], order[n_val:]
    log(f"fitting the head on {len(tr)} mixtures ({len(va)} for validation)")

    def on_step(step, loss, val_rmse):
        if metric is not None:
            metric("train_loss", step, loss)
            if val_rmse is not None:
                metric("intensity_rmse", step, val_rmse)
        progress(0.8 + 0.15 * step / cfg.steps, f"fitting step {step}/{cfg.steps}")
        if stop is not None and stop.is_set():
            raise Stopped("stopped")

    torch.manual_seed(cfg.seed)
    fit = fit_voice_head(model, X[tr], y[tr], X[va], y[va], steps=cfg.steps, lr=cfg.lr, on_step=on_step)
    log(f"validation RMSE {fit['val_rmse']:.3f} dB (step {fit['best_step']})")
    if cfg.target == "asl":  # how far head and P.56 may disagree before noise is assumed (core.voice)
        quiet = np.flatnonzero(np.concatenate(clean))  # all of them: a linear fit of six weights
        with torch.no_grad():
            errors = model.head(torch.from_numpy(X[quiet]).float()).numpy() - y[quiet]
        tau = voice.tau_from_clean_errors(errors)
        model.config.intensity_fusion_tau_db = fit["fusion_tau_db"] = round(tau, 3)
        log(f"fusion with the P.56 meter: tau {tau:.2f} dB (2 x RMSE on {len(quiet)} clean mixtures)")
    card = {
        "model": cfg.model,
        "target": target_name,
        "units": "dBFS",
        "what": "the clean voice's level (ITU-T P.56 active speech level)"
        if cfg.target == "asl"
        else "the clean voice's RMS level",
        "intensity_mean": model.config.intensity_mean,
        "intensity_std": model.config.intensity_std,
        "encoder": "frozen; the head reads the mean-pooled level statistics of the encoder's input frames"
        " (generalised means of frame power, core.model.STAT_POWERS) through its linear level path;"
        " the MLP over the encoder states is zero",
        "data": {
            "mixtures": int(len(y)),
            "clean_utterances": len(src.speech),
            "real_utterances": src.real_speech,
            "espeak_utterances": cfg.espeak,
            "noise_recordings": len(src.noise),
            "rirs": len(src.rirs),
            "snr_db": [0.0, 40.0],
            "voice_level_dbfs": [-55.0, -5.0],
            "heldout_speech": list(vm.HELDOUT_SPEECH),
            "heldout_noise": list(vm.HELDOUT_NOISE),
        },
        "fit": fit,
        "command": "python -m training.voice_head " + " ".join(cfg.extra.get("argv", [])),
    }
    if cfg.heldout:
        progress(0.95, "held-out evaluation")
        try:
            items = vm.heldout_sets(cfg.target)
        except ValueError as e:
            log(f"held-out evaluation skipped: {e}")
        else:
            rows = heldout_table(
                model, processor, items, cache / f"heldout-{len(items)}.npy", level_only=cfg.level_only
            )
            card["heldout"] = rows
            log("held-out real speech + held-out noise:\n" + format_table(rows, target_name))
    out = Path(cfg.out)
    save_head(model, out / f"{name}.safetensors", card)
    atomic_write_text(out / f"{name}.json", json.dumps(card, indent=2) + "\n")
    log(f"wrote {out / (name + '.safetensors')}")
    progress(1.0, "done")
    return card


def _jsonl_metric(path: Path, then=None):
    """A ``metric`` callback that also appends the training tab's ``metrics.jsonl`` records."""
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(name: str, step: int, value: float) -> None:
        rec = (
            {"step": step, "split": "train", "loss": value, "intensity_loss": value}
            if name == "train_loss"
            else {"step": step, "split": "validation", "intensity_rmse": value}
        )
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(rec) + "\n")
        if then is not None:
            then(name, step, value)

    return write


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog="python -m training.voice_head", description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny.en")
    ap.add_argument("--target", choices=("asl", "rms"), default="asl")
    ap.add_argument(
        "--speech", nargs="+", default=None, help="clean-speech folders (default: shared real speech)"
    )
    ap.add_argument("--noise", nargs="+", default=None, help="noise folders (default: shared real noise)")
    ap.add_argument("--rir", nargs="+", default=None, help="room impulse response folders")
    ap.add_argument("--espeak", type=int, default=200, help="espeak-ng utterances added to the speech")
    ap.add_argument("--mixtures", type=int, default=1200)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--cache", default=None, help="feature cache folder (default: TMP/speechint-voice-head/...)"
    )
    ap.add_argument("--out", default=str(HEADS_DIR))
    ap.add_argument("--name", default=None)
    ap.add_argument("--no-heldout", action="store_true", help="skip the shared held-out evaluation")
    ap.add_argument("--metrics", default=None, help="append live metrics (JSON lines) here")
    ap.add_argument(
        "--level-only",
        action="store_true",
        help="skip the encoder passes (the fitted level path reads the encoder's input only): minutes for any model",
    )
    a = ap.parse_args(argv)
    cfg = VoiceHeadConfig(
        model=a.model,
        target=a.target,
        speech=a.speech,
        noise=a.noise,
        rir=a.rir,
        espeak=a.espeak,
        mixtures=a.mixtures,
        steps=a.steps,
        seed=a.seed,
        cache=a.cache,
        out=a.out,
        name=a.name,
        heldout=not a.no_heldout,
        metrics=a.metrics,
        level_only=a.level_only,
        extra={"argv": argv},
    )
    try:
        card = train_voice_head(cfg)
    except (ValueError, OSError) as e:  # no usable speech, unreadable folders: one line
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    print(json.dumps({"fit": card["fit"], "heldout": card.get("heldout")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
