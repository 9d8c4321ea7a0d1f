"""``SpeechInt --self-test``: prove an installed app works end to end, offline, in one line.

Analyses the bundled sample (``resources/samples/selftest.flac``, espeak-ng speech normalised to
-23 LUFS) with the default model and checks the transcript (WER against the spoken text) and
the integrated loudness (against a second, independent BS.1770 meter, see
``packaging/make_sample.py``) and the P.56 active speech level (against the tested meter's value
when the sample was made). A shipped intensity head must also have produced a prediction,
which catches a bundle that lost its head file. Prints exactly one line; exit 0 means ok.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

MAX_WER = 0.15  # the sample decodes word-perfect with tiny.en; allow one slip, not a broken model
LUFS_TOLERANCE = 0.1  # two exact BS.1770 meters agree to a few hundredths on 5 s of speech
ASL_TOLERANCE_DB = 0.1  # the same P.56 meter on the same samples: only the JSON's rounding differs
# The shipped head's validation RMSE is ~2.4 dB: 6 dB passes a working head and fails a head whose
# standardisation or weights were lost (those miss by tens of dB).
INTENSITY_TOLERANCE_DB = 6.0


@dataclass
class SelfTestResult:
    ok: bool
    line: str


def sample_paths(spec_path: Path | None = None) -> tuple[Path, dict]:
    """The sample and its expected values: the bundled ones (inside the bundle when frozen)."""
    from speechint_desktop.core import catalog

    spec_path = Path(spec_path or catalog.resources_dir() / "samples" / "selftest.json")
    folder = spec_path.parent
    try:
        expected = json.loads(spec_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RuntimeError(
            f"{spec_path}: cannot read the self-test sample's expected values ({exc})"
        ) from exc
    audio = folder / expected.get("file", "selftest.flac")
    if not audio.is_file():
        raise RuntimeError(f"{audio}: the self-test sample is missing")
    return audio, expected


def run(model: str | None = None, device: str = "auto", expected: Path | None = None) -> SelfTestResult:
    """Run the self-test; never raises (a failure is a result with the reason).

    ``expected`` points at another sample's JSON (``file``, ``text``, ``integrated_lufs``).
    """
    started = time.perf_counter()
    try:
        from speechint_desktop.core import catalog
        from speechint_desktop.core.engine import Engine
        from speechint_desktop.core.text import wer

        name = model or catalog.DEFAULT_MODEL
        audio, spec = sample_paths(expected)
        engine = Engine(name, device)
        analysis = engine.analyze(audio)
    except Exception as exc:  # one line for whatever broke: that is the point of a self-test
        return SelfTestResult(False, f"self-test FAILED: {_one_line(exc)}")

    problems = []
    error_rate = wer([spec["text"]], [analysis.text])
    if error_rate > MAX_WER:
        problems.append(f"transcript WER {error_rate:.2f} > {MAX_WER} (heard {analysis.text.strip()!r})")
    lufs = analysis.loudness.integrated_lufs
    want = float(spec["integrated_lufs"])
    if lufs is None:
        problems.append(f"no integrated loudness ({analysis.loudness.note})")
    elif abs(lufs - want) > LUFS_TOLERANCE:
        problems.append(f"integrated loudness {lufs:.2f} LUFS, expected {want:.2f} +/- {LUFS_TOLERANCE}")
    asl = analysis.loudness.asl_dbfs
    if "asl_dbfs" in spec:
        want_asl = float(spec["asl_dbfs"])
        if asl is None:
            problems.append("no active speech level (the sample read as silence)")
        elif abs(asl - want_asl) > ASL_TOLERANCE_DB:
            problems.append(
                f"active speech level {asl:.2f} dBFS, expected {want_asl:.2f} +/- {ASL_TOLERANCE_DB}"
            )
    from speechint_desktop.core.model import shipped_head

    head = shipped_head(name)
    predicted, target = analysis.predicted_intensity, analysis.intensity_target
    if head is not None and predicted is None:
        problems.append(
            f"intensity head {head.name} is shipped but gave no prediction ({analysis.intensity_note})"
        )
    # a clean recording: the voice's level is its P.56 active speech level
    target_key = {"rms_dbfs": "rms_dbfs", "lufs": "integrated_lufs", "voice_asl_dbfs": "asl_dbfs"}.get(
        target or ""
    )
    if predicted is not None and target_key in spec:
        if abs(predicted - float(spec[target_key])) > INTENSITY_TOLERANCE_DB:
            problems.append(
                f"predicted intensity {predicted:.1f} dB, measured {float(spec[target_key]):.1f} "
                f"+/- {INTENSITY_TOLERANCE_DB:g} ({target})"
            )

    seconds = time.perf_counter() - started
    if problems:
        return SelfTestResult(False, "self-test FAILED: " + "; ".join(problems))
    voice = "" if asl is None else f", voice {asl:.2f} dBFS"
    intensity = ""
    if predicted is not None:
        unit = "LUFS" if target == "lufs" else "dBFS"
        intensity = f", predicted intensity {predicted:.1f} {unit}"
        if target_key in spec:
            intensity += f" (measured {float(spec[target_key]):.1f})"
    return SelfTestResult(
        True,
        f"self-test ok: model {name} ({engine.backend}), WER {error_rate:.2f}, loudness {lufs:.2f} LUFS "
        f"(expected {want:.2f}){voice}{intensity}, {seconds:.1f} s",
    )


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text and text[0] else type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="SpeechInt --self-test", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="catalogue name or model folder (default: tiny.en)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--expected", default=None, help="another sample's JSON (default: the bundled one)")
    args = parser.parse_args(argv)
    result = run(args.model, args.device, args.expected)
    print(result.line, file=sys.stdout if result.ok else sys.stderr, flush=True)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
