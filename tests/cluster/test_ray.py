"""``speechint analyze --ray`` on a real two-node Ray cluster (issue 11's must-show).

46 files — real speech (JFK whole and cut, TIMIT's LDC93S1, speechbrain's 8 utterances), 30
espeak-ng sentences in several voices, an empty file, a text file named .mp3 and a truncated
FLAC — analysed on a head and a worker node of one CPU each (``ray start`` on the loopback
address 127.0.0.2, as Ray rewrites 127.0.0.1 to the machine's network address) with the real
tiny.en, compared with the plain CLI on the same files; then 23 of them with the worker node
killed (every process of it, by PID) mid-run, then ``--resume``.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.cluster.conftest import kill_tree, node_env, tree
from tests.conftest import REPO, SHARED_AUDIO, espeak

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

SENTENCES = [
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.",
    "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.",
    "Kick the ball straight and follow through.",
    "Help the woman get back to her feet.",
    "A pot of tea helps to pass the evening.",
    "Smoky fires lack flame and heat.",
    "The soft cushion broke the man's fall.",
    "The salt breeze came across from the sea.",
    "The girl at the booth sold fifty bonds.",
]
VOICES = [("en-us", 160, 50), ("en", 150, 40), ("en-us+f3", 170, 60), ("en+m3", 140, 45)]
BAD = ("empty.wav", "notaudio.mp3", "truncated.flac")
LU = 1e-6


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> list[Path]:
    """46 files (43 of speech, 3 bad), in the order the CLI will find them."""
    d = tmp_path_factory.mktemp("corpus")
    files = [SHARED_AUDIO / "jfk.flac", SHARED_AUDIO / "LDC93S1.wav"]
    files += sorted((SHARED_AUDIO / "extra" / "speech").glob("*.wav"))
    x, sr = sf.read(SHARED_AUDIO / "jfk.flac", dtype="float32")
    for i, (a, b) in enumerate([(0.0, 2.77), (2.77, 7.92), (7.92, None)]):
        sf.write(d / f"jfk_part{i}.flac", x[int(a * sr) : None if b is None else int(b * sr)], sr)
    for i in range(30):
        voice, wpm, pitch = VOICES[i % len(VOICES)]
        espeak(
            SENTENCES[i % len(SENTENCES)], d / f"espeak_{i:02d}.wav", voice=voice, wpm=wpm + i, pitch=pitch
        )
    (d / "empty.wav").write_bytes(b"")
    (d / "notaudio.mp3").write_text("this is not audio\n")
    (d / "truncated.flac").write_bytes((SHARED_AUDIO / "jfk.flac").read_bytes()[:4000])
    files += sorted(d.iterdir())
    assert len(files) == 46 and all(f.exists() for f in files)
    return files


def _cli(args: list[str], log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "speechint_desktop.cli", "analyze", *args]
    return subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=node_env(), cwd=REPO)


def _run(args: list[str], log: Path, timeout: float = 900) -> int:
    p = _cli(args, log)
    try:
        return p.wait(timeout=timeout)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def _tables(out: Path):
    import pyarrow.parquet as pq

    files = pq.read_table(out / "speechint-files.parquet").to_pylist()
    segs = pq.read_table(out / "speechint-segments.parquet").to_pylist()
    return files, segs


def _errors(log: Path) -> dict[str, str]:
    """``error: NAME: why`` lines → {NAME: whole message}."""
    out = {}
    for line in log.read_text().splitlines():
        if line.startswith("error: "):
            msg = line[len("error: ") :]
            out[msg.split(":")[0]] = msg
    return out


def _check_once(corpus: list[Path], out: Path) -> tuple[list[dict], list[dict]]:
    """Every input file exactly once in the files table, every good one's outputs exactly once in
    the folder and its segments exactly once in the segments table; no temporary leftovers."""
    files, segs = _tables(out)
    sources = [r["source"] for r in files]
    assert sorted(sources) == sorted(str(f) for f in corpus)  # each once, none lost
    by = {r["source"]: r for r in files}
    for name in ("empty.wav", "notaudio.mp3"):
        row = next(r for r in files if r["source"].endswith("/" + name))
        assert row["status"] == "failed" and row["error"].startswith(f"{name}: "), row
    leftovers = [
        p.name for p in out.rglob("*") if p.name.startswith(".") and p.suffix in (".tmp", ".partial")
    ]
    assert not leftovers
    per_file = {p.stem for p in out.glob("*.json")}
    for f in corpus:
        r = by[str(f)]
        if r["status"] != "done":
            assert f.stem not in per_file, f
            continue
        data = json.loads((out / f"{f.stem}.json").read_text())
        assert data["source"] == str(f)
        mine = [s for s in segs if s["source"] == str(f)]
        assert [s["segment"] for s in mine] == list(range(len(data["segments"]))), f  # once each
        assert [s["text"] for s in mine] == [s["text"].strip() for s in data["segments"]]
        assert [len(s["words"]) for s in mine] == [len(s["words"]) for s in data["segments"]]
    assert sum(r["status"] == "done" for r in files) == len(per_file) >= len(corpus) - 6
    return files, segs


def test_two_nodes_match_the_cli(corpus, ray_cluster, tmp_path):
    """The same text, loudness to 1e-6 LU, CSV and subtitles as the single-machine CLI; bad files
    as failure rows; both nodes did work.

    Both with the defaults (batches, the temperature fallback) but for clip packing, which
    ``--ray`` never does: a cluster groups files into batches differently from one process, and
    a window's words must not depend on its batch (a rejected window is decoded again alone, its
    sampling seeded from its audio).
    """
    fmt = ["--format", "json,csv,srt"]
    plain, ray_out = tmp_path / "plain", tmp_path / "ray"
    rc_plain = _run([*map(str, corpus), *fmt, "--no-pack-clips", "--out", str(plain)], tmp_path / "plain.log")
    rc_ray = _run(
        [
            *map(str, corpus),
            *fmt,
            "--out",
            str(ray_out),
            "--ray",
            ray_cluster.address,
            "--actors",
            "2",
            "--files-per-task",
            "4",
        ],
        tmp_path / "ray.log",
    )
    log = (tmp_path / "ray.log").read_text()
    assert rc_plain == 1 and rc_ray == 1, log  # 1: some files failed, the rest were written
    files, segs = _check_once(corpus, ray_out)

    plain_errors, ray_errors = _errors(tmp_path / "plain.log"), _errors(tmp_path / "ray.log")
    assert set(plain_errors) >= {"empty.wav", "notaudio.mp3"}
    assert ray_errors == plain_errors
    by = {r["source"]: r for r in files}
    for name, msg in plain_errors.items():
        row = next(r for r in files if r["source"].endswith("/" + name))
        assert (row["status"], row["error"]) == ("failed", msg)

    compared = 0
    for f in corpus:
        a_path, b_path = plain / f"{f.stem}.json", ray_out / f"{f.stem}.json"
        assert a_path.exists() == b_path.exists(), f
        if not a_path.exists():
            continue
        a, b = json.loads(a_path.read_text()), json.loads(b_path.read_text())
        assert b["text"] == a["text"], f
        assert [s["text"] for s in b["segments"]] == [s["text"] for s in a["segments"]], f
        for key in (
            "integrated_lufs",
            "speech_integrated_lufs",
            "loudness_range_lu",
            "rms_dbfs",
            "true_peak_dbtp",
        ):
            va, vb = a["loudness"][key], b["loudness"][key]
            assert (va is None) == (vb is None), (f, key)
            if va is not None:
                assert abs(va - vb) <= LU, (f, key, va, vb)
        row = by[str(f)]
        assert row["text"] == a["text"].strip()
        if a["loudness"]["integrated_lufs"] is not None:
            assert abs(row["integrated_lufs"] - a["loudness"]["integrated_lufs"]) <= LU
        assert (ray_out / f"{f.stem}.srt").read_text() == (plain / f"{f.stem}.srt").read_text(), f
        compared += 1
    assert compared >= 40
    assert sum(1 for r in files if r["text"]) >= 30  # real transcripts, not only empty results compared

    def rows(p):
        with open(p / "speechint-results.csv", newline="") as fh:
            return list(csv.DictReader(fh))

    assert rows(ray_out) == rows(plain)
    nodes = {r["node"] for r in files if r["status"] == "done"}
    assert len(nodes) == 2, nodes  # the head's actor and the worker node's both analysed files


def test_worker_node_killed_mid_run(corpus, ray_cluster, tmp_path):
    """Kill every process of the worker node (by PID) while its actor analyses: the job completes
    and each file is in the tables and the output folder exactly once."""
    out = tmp_path / "ray"
    victim = ray_cluster.nodes[1]
    good = len(corpus) - 3  # every good file: runway to kill mid-run (the last three are bad)
    p = _cli(
        [
            *map(str, corpus),
            "--format",
            "json,srt",
            "--out",
            str(out),
            "--ray",
            ray_cluster.address,
            "--actors",
            "2",
            "--files-per-task",
            "2",
            "--no-fit-windows",  # every clip a 30 s window: runway to kill the node mid-run
        ],
        tmp_path / "ray.log",
    )
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and p.poll() is None:
            # the worker node's actor past loading its model (a few CPU seconds) and analysing
            busy = sum(_cpu_s(q) for q in tree(victim.pid) if "MapWorker" in " ".join(_cmdline(q))) > 6
            if busy and len(list(out.glob("*.json"))) >= 2:
                break
            time.sleep(0.2)
        assert p.poll() is None, (tmp_path / "ray.log").read_text()
        assert busy, "the worker node's actor never got to work"
        kill_tree(victim.pid)
        assert not [q for q in tree(victim.pid) if q.is_running()]
        written_at_kill, killed_at = len(list(out.glob("*.json"))), time.monotonic()
        assert written_at_kill < good  # mid-run
        rc = p.wait(timeout=900)
        print(
            f"killed the worker node after {written_at_kill} files; the job ended {time.monotonic() - killed_at:.0f} s later"
        )
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    log = (tmp_path / "ray.log").read_text()
    assert rc == 1, log  # the bad files only
    files, _ = _check_once(corpus, out)
    assert sum(r["status"] == "done" for r in files) == len(list(out.glob("*.json")))
    assert sorted(p.name for p in out.glob("*.srt")) == sorted(p.stem + ".srt" for p in out.glob("*.json"))
    assert len({r["node"] for r in files if r["status"] == "done"}) == 2  # the killed node had done work

    # --resume on what is left of the cluster: done files skipped, two lost results redone, the
    # tables rebuilt with each file once
    done = sorted(out.glob("*.json"))
    for lost in done[:2]:
        lost.unlink()
    (out / "speechint-files.parquet").unlink()
    rc = _run(
        [
            *map(str, corpus),
            "--format",
            "json,srt",
            "--out",
            str(out),
            "--ray",
            ray_cluster.address,
            "--resume",
            "--no-fit-windows",  # the settings the results were made with
        ],
        tmp_path / "resume.log",
    )
    log = (tmp_path / "resume.log").read_text()
    assert rc == 1, log
    assert f"skip: {len(done) - 2} files (done)" in log or log.count("skip: ") == len(done) - 2, log
    assert "2 analysed" in log, log
    files, _ = _check_once(corpus, out)
    assert sorted(out.glob("*.json")) == done


def _cpu_s(proc) -> float:
    try:
        t = proc.cpu_times()
        return t.user + t.system
    except Exception:
        return 0.0


def _cmdline(proc) -> list[str]:
    try:
        return proc.cmdline() + [proc.name()]
    except Exception:
        return []


def test_plain_cli_and_app_never_import_ray(jfk_path, tmp_path):
    """The plain ``analyze`` and the app's modules run without loading Ray."""
    code = (
        "import sys\n"
        "from speechint_desktop import cli\n"
        "import speechint_desktop.ui.app, speechint_desktop.ui.main_window\n"
        f"rc = cli.main(['analyze', {str(jfk_path)!r}, '--out', {str(tmp_path / 'out')!r}, '-q'])\n"
        "assert rc == 0, rc\n"
        "bad = sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.'))\n"
        "assert not bad, bad[:5]\n"
        "print('ok')\n"
    )
    env = node_env()
    env["QT_QPA_PLATFORM"] = "offscreen"
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, timeout=300
    )
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-2000:]
    assert (tmp_path / "out" / "jfk.json").exists()


def test_ray_missing_or_unreachable_is_one_line(jfk_path, tmp_path):
    """A wrong address: one error line, exit 2, nothing written, no traceback."""
    from tests.cluster.conftest import HOST, free_port

    log = tmp_path / "log"
    rc = _run([str(jfk_path), "--out", str(tmp_path / "out"), "--ray", f"{HOST}:{free_port()}"], log, 300)
    text = log.read_text()
    assert rc == 2, text
    assert "Traceback" not in text
    assert [ln for ln in text.splitlines() if ln.startswith("error: cannot reach the Ray cluster")], text
    assert not (tmp_path / "out" / "speechint-files.parquet").exists()

    # a model folder that is not there: said before any Ray starts
    rc = _run(
        [str(jfk_path), "--out", str(tmp_path / "out"), "--ray", "--model", str(tmp_path / "nope")], log, 300
    )
    assert rc == 2 and log.read_text().strip() == f"error: {tmp_path / 'nope'}: no such model folder " + (
        "(catalogue models: tiny.en, base, small)"
    ), log.read_text()


def test_summary_rows_of_an_analysis():
    """The table rows keep full precision and nest words per segment (no model: made-up result)."""
    from speechint_desktop.cluster import file_row, schemas, segment_rows
    from speechint_desktop.core.results import Analysis, Loudness, Segment, Word

    w = [Word(0.1, 0.4, " hello", 0.9, -20.123456789, -18.0), Word(0.45, 0.9, " there", 0.8)]
    a = Analysis(
        source="/x/a.wav",
        duration_s=1.0,
        sample_rate=16000,
        channels=1,
        text=" hello there",
        segments=[Segment(0.1, 0.9, " hello there", -26.0, -25.123456789, words=w)],
        loudness=Loudness(-25.123456789, 1.5, -26.0, -12.0, 1.0),
        model="tiny.en",
        audio_note="decoding stopped at 1.0 s on damaged data: the rest could not be read",
    )
    import pyarrow as pa

    files_schema, seg_schema = schemas()
    row = file_row(a)
    t = pa.Table.from_pylist([row], schema=files_schema)
    assert t.column("integrated_lufs")[0].as_py() == -25.123456789
    assert t.column("audio_note")[0].as_py() == a.audio_note  # a damaged file says so in the table too
    assert (row["segments"], row["words"], row["text"]) == (1, 2, "hello there")
    s = pa.Table.from_pylist(segment_rows(a), schema=seg_schema).to_pylist()
    assert [x["text"] for x in s[0]["words"]] == ["hello", "there"]
    assert s[0]["words"][0]["rms_dbfs"] == -20.123456789 and s[0]["words"][1]["rms_dbfs"] is None
    assert np.isclose(s[0]["lufs"], -25.123456789)
