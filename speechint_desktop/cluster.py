"""Corpus-scale analysis on a Ray cluster: ``speechint analyze … --ray [ADDRESS]``.

Ray Data lists the files; a pool of actors, each holding one ``Engine`` (the model loaded once per
actor, one actor per GPU or per ``--cpus-per-actor`` CPU slot), analyses them a task of
``--files-per-task`` files at a time through ``Engine.analyze_many``, and writes each file's results
itself through ``core.batch.Batch``: the same JSON, SRT/VTT/TXT and resume record as the plain CLI,
each atomically. The driver streams one row per file into the progress bar and, at the end, into two
Parquet tables written atomically in ``--out``: ``speechint-files.parquet`` (one row per input file:
its summary, or ``status="failed"`` and the one-line error) and ``speechint-segments.parquet`` (one
row per segment, its words nested). The CSV, if asked for, is the plain CLI's.

Nothing lost, nothing twice: a task whose worker dies is retried by Ray Data on a live actor; a
retried file's outputs are atomic renames onto the same final names, so a retry replaces, never
duplicates; the tables are built from the rows of completed tasks (Ray drops a failed attempt's),
keyed by source file. A killed driver leaves the per-file records behind, so the same command with
``--resume`` skips those files and takes their rows from the records.

Ray is imported only inside ``analyze_on_ray``: the app and the plain CLI never load it.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import math
import os
import sys
import time
from pathlib import Path

LOCAL = "local"  # ``--ray`` without an address: a Ray instance of our own on this machine
FILES_TABLE = "speechint-files.parquet"
SEGMENTS_TABLE = "speechint-segments.parquet"
CSV_EVERY_S = 10.0  # the CSV is rewritten at most this often during a run (and at its end)
INSTALL_HINT = "--ray needs the cluster extra: pip install -e '.[cluster]' (Ray Data and pyarrow)"

_FLOAT_FILE_FIELDS = (
    "duration_s",
    "integrated_lufs",
    "loudness_range_lu",
    "rms_dbfs",
    "speech_integrated_lufs",
    "speech_rms_dbfs",
    "speech_duration_s",
    "sample_peak_dbfs",
    "true_peak_dbtp",
    "max_momentary_lufs",
    "max_short_term_lufs",
    "predicted_intensity",
    "inference_s",
    "total_s",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``analyze`` options for running on Ray (plain argparse: nothing of Ray is imported)."""
    g = parser.add_argument_group("cluster (Ray; needs pip install -e '.[cluster]')")
    g.add_argument(
        "--ray",
        nargs="?",
        const=LOCAL,
        default=None,
        metavar="ADDRESS",
        help="analyse on a Ray cluster (ADDRESS of its head, e.g. 10.0.0.1:6379, or auto); "
        "without ADDRESS a local Ray instance. Also writes speechint-files.parquet and "
        "speechint-segments.parquet to --out",
    )
    g.add_argument(
        "--actors",
        type=int,
        default=None,
        metavar="N",
        help="model actors (default: as many as the cluster's CPUs/GPUs hold)",
    )
    g.add_argument(
        "--gpus-per-actor", type=float, default=0.0, metavar="G", help="GPUs per actor (default 0: CPU)"
    )
    g.add_argument(
        "--cpus-per-actor", type=float, default=1.0, metavar="C", help="CPUs per actor (default 1)"
    )
    g.add_argument(
        "--files-per-task",
        type=int,
        default=8,
        metavar="N",
        help="files per task; a dead worker's task is redone (default 8)",
    )


# --- rows: one per file, one per segment (full precision, unlike the CSV) ------------------------


def file_row(analysis) -> dict:
    """An ``Analysis`` → its row of ``speechint-files.parquet``."""
    loud = analysis.loudness
    return {
        "source": analysis.source,
        "status": "done",
        "error": None,
        "duration_s": analysis.duration_s,
        "sample_rate": analysis.sample_rate,
        "channels": analysis.channels,
        "language": analysis.language,
        "text": analysis.text.strip(),
        "integrated_lufs": loud.integrated_lufs,
        "loudness_range_lu": loud.loudness_range_lu,
        "rms_dbfs": loud.rms_dbfs,
        "speech_integrated_lufs": loud.speech_integrated_lufs,
        "speech_rms_dbfs": loud.speech_rms_dbfs,
        "speech_duration_s": loud.speech_duration_s,
        "sample_peak_dbfs": loud.sample_peak_dbfs,
        "true_peak_dbtp": loud.true_peak_dbtp,
        "max_momentary_lufs": loud.max_momentary_lufs,
        "max_short_term_lufs": loud.max_short_term_lufs,
        "predicted_intensity": analysis.predicted_intensity,
        "intensity_target": analysis.intensity_target,
        "intensity_note": analysis.intensity_note or loud.note,
        "audio_note": analysis.audio_note,
        "model": analysis.model,
        "segments": len(analysis.segments),
        "words": sum(len(s.words) for s in analysis.segments),
        "inference_s": analysis.timings.inference_s,
        "total_s": analysis.timings.total_s,
        "node": None,
    }


def failure_row(source: str, message: str) -> dict:
    return {"source": source, "status": "failed", "error": message}


def segment_rows(analysis) -> list[dict]:
    """An ``Analysis`` → its rows of ``speechint-segments.parquet`` (words nested in each)."""
    rows = []
    for i, s in enumerate(analysis.segments):
        rows.append(
            {
                "source": analysis.source,
                "segment": i,
                "start": s.start,
                "end": s.end,
                "text": s.text.strip(),
                "rms_dbfs": s.rms_dbfs,
                "lufs": s.lufs,
                "true_peak_dbtp": s.true_peak_dbtp,
                "predicted_intensity": s.predicted_intensity,
                "avg_logprob": s.avg_logprob,
                "no_speech_prob": s.no_speech_prob,
                "temperature": s.temperature,
                "words": [
                    {
                        "start": w.start,
                        "end": w.end,
                        "text": w.text.strip(),
                        "probability": w.probability,
                        "rms_dbfs": w.rms_dbfs,
                        "max_momentary_lufs": w.max_momentary_lufs,
                    }
                    for w in s.words
                ],
            }
        )
    return rows


def schemas():
    """The two tables' Arrow schemas (explicit, so an all-failed or empty run keeps its types)."""
    import pyarrow as pa

    f64, s = pa.float64(), pa.string()
    files = [("source", s), ("status", s), ("error", s)]
    files += [(k, f64) for k in _FLOAT_FILE_FIELDS[:1]]
    files += [("sample_rate", pa.int32()), ("channels", pa.int32()), ("language", s), ("text", s)]
    files += [(k, f64) for k in _FLOAT_FILE_FIELDS[1:12]]
    files += [("intensity_target", s), ("intensity_note", s), ("audio_note", s), ("model", s)]
    files += [("segments", pa.int32()), ("words", pa.int32())]
    files += [(k, f64) for k in _FLOAT_FILE_FIELDS[12:]] + [("node", s)]
    word = pa.struct(
        [
            ("start", f64),
            ("end", f64),
            ("text", s),
            ("probability", f64),
            ("rms_dbfs", f64),
            ("max_momentary_lufs", f64),
        ]
    )
    segs = [("source", s), ("segment", pa.int32()), ("start", f64), ("end", f64), ("text", s)]
    segs += [(k, f64) for k in ("rms_dbfs", "lufs", "true_peak_dbtp", "predicted_intensity")]
    segs += [(k, f64) for k in ("avg_logprob", "no_speech_prob", "temperature")]
    segs += [("words", pa.list_(word))]
    return pa.schema(files), pa.schema(segs)


# --- the actor ---------------------------------------------------------------------------------


class Analyzer:
    """One model per actor (Ray Data's callable class): a batch of file paths in, a row per file
    out, each file's results written to ``out_dir`` before its row is returned."""

    def __init__(self, engine_kwargs: dict, out_dir: str, formats: list, settings: dict, word_cues: bool):
        from .core.engine import Engine

        self.engine = Engine(**engine_kwargs)
        self.out_dir, self.settings, self.word_cues = out_dir, settings, word_cues
        self.formats = [f for f in formats if f != "csv"]  # the driver writes the CSV, once
        try:
            import ray

            self.node = ray.get_runtime_context().get_node_id()
        except Exception:  # outside Ray (tests of the class itself)
            self.node = None

    def __call__(self, batch: dict) -> dict:
        from .core.batch import Batch
        from .core.export import csv_row
        from .core.results import FileError

        paths = [str(p) for p in batch["path"]]
        names = dict(zip(paths, (str(n) for n in batch["name"]), strict=True))
        writer = Batch(paths, self.out_dir, self.formats, self.settings, self.word_cues, names=names)
        rows: dict[str, list] = {
            k: [] for k in ("source", "status", "error", "duration_s", "file", "csv", "segments")
        }

        def add(source, status, error=None, duration=0.0, file=None, csv=None, segments=()):
            for k, v in zip(rows, (source, status, error, duration, file, csv, segments), strict=True):
                rows[k].append(json.dumps(v) if k in ("file", "csv", "segments") else v)

        for result in self.engine.analyze_many(paths):
            if isinstance(result, FileError):
                add(result.source, "failed", result.message)
                continue
            try:
                writer.finish(result)  # the CLI's own writing: formats, then the resume record
            except OSError as e:
                add(result.source, "failed", f"{Path(result.source).name}: cannot write results ({e})")
                continue
            row = file_row(result)
            row["node"] = self.node
            add(result.source, "done", None, result.duration_s, row, csv_row(result), segment_rows(result))
        return rows


# --- the driver --------------------------------------------------------------------------------


def _err(message: str) -> None:
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr)


def _one_line(e: BaseException) -> str:
    """The last meaningful line of a (possibly remote) exception."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return (lines[-1] if lines else type(e).__name__)[:300]


def _connect(ray, address: str) -> None:
    quiet = {"log_to_driver": False, "logging_level": logging.ERROR}
    # Ray's C++ core logs a warning per actor pool to stderr (constructor arguments held in the
    # object store, which is the driver's: they outlive any worker node); the bar says the rest
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    if address == LOCAL:
        # one machine: Ray's processes talk over the loopback interface only
        ray.init(address="local", include_dashboard=False, _node_ip_address="127.0.0.1", **quiet)
    else:
        _probe(address)
        host = address.rsplit(":", 1)[0].strip("[]")
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if loopback:  # a cluster on this machine's loopback interface: the driver joins it there
            quiet["_node_ip_address"] = host
        ray.init(address=address, **quiet)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # ours says files, hours and failures
    ctx.print_on_execution_start = False
    ctx.enable_auto_log_stats = False
    logging.getLogger("ray").setLevel(logging.ERROR)
    logging.getLogger("ray.data").setLevel(logging.ERROR)


def _probe(address: str, timeout: float = 10.0) -> None:
    """Fail in seconds, not after Ray's minutes of retries, when nothing listens at HOST:PORT."""
    import socket

    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "://" in address:
        return  # "auto", "ray://…": Ray resolves those itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        raise ConnectionError(e.strerror or str(e)) from None


def _check_model(args) -> str | None:
    """A model folder or head file that is not there, said before Ray starts (the actors would
    otherwise fail one after another). Paths must be the same on every node; a catalogue model
    is installed by each actor on first use."""
    from .core import catalog

    if args.model not in catalog.CATALOG:
        try:
            catalog.resolve(args.model, install=False)
        except catalog.ModelError as e:
            return str(e)
    if args.head and not Path(args.head).is_file():
        return f"{args.head}: no such head file"
    return None


def _actors(ray, args, n_tasks: int) -> int:
    if args.actors:
        return max(1, min(args.actors, n_tasks))
    res = ray.cluster_resources()
    if args.gpus_per_actor > 0:
        fit = res.get("GPU", 0) / args.gpus_per_actor
    else:
        fit = res.get("CPU", 1) / max(args.cpus_per_actor, 1e-9)
    return max(1, min(int(fit), n_tasks))


def analyze_on_ray(args, batch, options, say) -> int:
    """Run ``batch.pending`` on Ray (``args.ray``: an address or ``LOCAL``); write the per-file
    results, the CSV and the two Parquet tables. Returns the CLI's exit status."""
    try:
        import pyarrow.parquet as pq
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        _err(INSTALL_HINT)
        return 2
    from tqdm import tqdm

    from .core.fsutil import atomic_path

    for name, value in (("--files-per-task", args.files_per_task), ("--cpus-per-actor", args.cpus_per_actor)):
        if value <= 0:
            _err(f"{name} must be > 0")
            return 2
    problem = _check_model(args)
    if problem:
        _err(problem)
        return 2
    pending = batch.pending
    out_dir = batch.out_dir
    say(f"connecting to Ray ({'a local instance' if args.ray == LOCAL else args.ray}) …")
    try:
        _connect(ray, args.ray)
    except Exception as e:  # ConnectionError, a wrong address, a version mismatch …
        _err(f"cannot reach the Ray cluster at {args.ray}: {_one_line(e)}")
        return 2
    file_schema, seg_schema = schemas()
    seen: dict[str, dict] = {}
    failed = 0
    try:
        with atomic_path(out_dir / SEGMENTS_TABLE) as seg_tmp:
            seg_writer = pq.ParquetWriter(seg_tmp, seg_schema)
            try:
                if pending:
                    _stream(ray, args, batch, options, pending, seen, seg_writer, seg_schema, say, tqdm)
                failed = sum(r["status"] == "failed" for r in seen.values())
                # files done before (--resume): their rows come from their records
                for path in batch.skipped:
                    analysis, _ = batch.check(path)
                    if analysis is not None:
                        seen[str(path)] = file_row(analysis)
                        _write_segments(seg_writer, seg_schema, segment_rows(analysis))
            finally:
                seg_writer.close()
            rows = []
            for f in batch.files:
                row = seen.get(str(f)) or failure_row(str(f), f"{f.name}: no result (the job lost it)")
                rows.append(row)
            table = _table(file_schema, rows)
            with atomic_path(out_dir / FILES_TABLE) as tmp:
                pq.write_table(table, tmp)
            batch.write_csv()
    except _JobFailed as e:  # no tables: they would miss files (the per-file results are kept)
        batch.write_csv()
        _err(f"the Ray job failed: {e}; finished files are in {out_dir} (--resume continues)")
        return 2
    except KeyboardInterrupt:
        batch.write_csv()
        _err(f"cancelled; {batch.finished} file(s) finished and written to {out_dir} (--resume continues)")
        return 130
    finally:
        ray.shutdown()
        # the job is over: a killed node's writers left their temporaries, which no one renames
        batch.remove_leftovers((SEGMENTS_TABLE, FILES_TABLE))
    lost = sum(str(f) not in seen for f in batch.files)
    done = f", {len(batch.skipped)} already done" if args.resume else ""
    say(f"{batch.finished} analysed, {failed + lost} failed{done} → {out_dir}")
    return 1 if failed or lost else 0


def _table(schema, rows: list[dict]):
    import pyarrow as pa

    return pa.Table.from_pylist([{k: r.get(k) for k in schema.names} for r in rows], schema=schema)


def _write_segments(writer, schema, rows: list[dict]) -> None:
    if rows:
        writer.write_table(_table(schema, rows))


class _JobFailed(Exception):
    """The Ray job itself failed (a model that will not load, the cluster gone): one line."""


def _stream(ray, args, batch, options, pending, seen, seg_writer, seg_schema, say, tqdm) -> None:
    """Run the Ray Data job; each file's row is taken once, as its task completes."""
    n_tasks = math.ceil(len(pending) / args.files_per_task)
    actors = _actors(ray, args, n_tasks)
    device = args.device
    if args.gpus_per_actor <= 0 and device == "auto":
        device = "cpu"  # an actor without a GPU of its own must not take one of the node's
    engine_kwargs = {
        "model": args.model,
        "device": device,
        "compute": args.compute,
        "backend": args.backend,
        "threads": args.threads or max(1, int(args.cpus_per_actor)),
        "head": args.head,
        "options": options,
        "batch_size": args.batch_size,
    }
    items = [{"path": str(f), "name": batch.names[str(f)]} for f in pending]
    ds = ray.data.from_items(items, override_num_blocks=n_tasks)
    ds = ds.map_batches(
        Analyzer,
        fn_constructor_kwargs={
            "engine_kwargs": engine_kwargs,
            "out_dir": str(batch.out_dir),
            "formats": batch.formats,
            "settings": batch.settings,
            "word_cues": batch.word_cues,
        },
        batch_size=args.files_per_task,
        batch_format="numpy",
        concurrency=actors,
        num_cpus=args.cpus_per_actor,
        num_gpus=args.gpus_per_actor or None,
    )
    where = f"{actors} actor{'s' if actors != 1 else ''}"
    say(f"analysing {len(pending)} files on Ray, {where} ({args.model}) …")
    done_before = len(batch.skipped)
    bar = tqdm(
        total=len(batch.files),
        initial=done_before,
        unit="file",
        file=sys.stderr,
        disable=args.quiet or None,
        dynamic_ncols=True,
        bar_format="{percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} files {elapsed}<{remaining}  {desc}",
    )
    t0 = time.monotonic()
    last_csv = t0
    audio_s = 0.0
    failed = 0
    try:
        for row in ds.iter_rows():
            source = row["source"]
            if source in seen:  # Ray drops a failed attempt's rows; this makes sure
                continue
            if row["status"] == "done":
                seen[source] = json.loads(row["file"])
                batch.rows[source] = json.loads(row["csv"])
                batch.finished += 1
                audio_s += float(row["duration_s"] or 0.0)
                _write_segments(seg_writer, seg_schema, json.loads(row["segments"]))
            else:
                seen[source] = failure_row(source, row["error"])
                failed += 1
                bar.write(f"error: {row['error']}", file=sys.stderr)
            hours = (time.monotonic() - t0) / 3600
            rate = f"{audio_s / 3600 / hours:.1f} h audio/h" if hours > 0 else ""
            bar.set_description_str(f"{rate} · {failed} failed", refresh=False)
            bar.update(1)
            if time.monotonic() - last_csv > CSV_EVERY_S:
                batch.write_csv()
                last_csv = time.monotonic()
    except KeyboardInterrupt:
        raise
    except Exception as e:
        raise _JobFailed(_one_line(e)) from e
    finally:
        bar.close()
