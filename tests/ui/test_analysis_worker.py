"""The app's analysis queue decodes short clips together, as the CLI does (``Engine.decode_group``),
while every row keeps its own signals, result and cancel. The real worker thread, the real tiny.en,
real speech and espeak-ng sentences."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile as sf
from PySide6.QtCore import Qt

from speechint_desktop.core import audio
from speechint_desktop.core.engine import Engine
from speechint_desktop.ui.analysis_worker import GROUP_MAX_S, AnalysisWorker, QueueItem
from tests.conftest import espeak

SENTENCES = [
    ("Turn off the lights before you leave the office.", "en-us"),
    ("The children played football until it was dark.", "en-gb"),
    ("We bought fresh vegetables at the Sunday market.", "en-us+f3"),
]


@pytest.fixture(scope="module")
def clips(tmp_path_factory, jfk_path, ldc_path):
    """Short clips, a broken file among them, then one file too long to join a group."""
    d = tmp_path_factory.mktemp("queue")  # named so that the CLI's sorted order is the queue's
    said = [espeak(text, d / f"{'aex'[i]}-said.wav", voice) for i, (text, voice) in enumerate(SENTENCES)]
    jfk_copy, ldc_copy, broken = d / "b-jfk.flac", d / "d-ldc.wav", d / "c-broken.wav"
    shutil.copy(jfk_path, jfk_copy)
    shutil.copy(ldc_path, ldc_copy)
    broken.write_text("not audio")
    jfk = audio.to_model_input(audio.load_audio(jfk_path))
    long = d / "long.wav"
    sf.write(long, np.concatenate([jfk, np.zeros(16000, np.float32)] * 3), 16000)
    assert len(jfk) / 16000 < GROUP_MAX_S < sf.info(long).duration
    return {"short": [said[0], jfk_copy, broken, ldc_copy, said[1]], "long": long, "after": said[2]}


@pytest.fixture
def worker(qtbot, tiny_en_dir):
    w = AnalysisWorker("tiny.en", "cpu")  # installed by tiny_en_dir
    events: list[tuple[str, str]] = []
    w.events = events
    w.results = {}
    w.started_file.connect(lambda k: events.append(("started", k)))
    w.finished_file.connect(lambda k, a: (events.append(("finished", k)), w.results.setdefault(k, a)))
    w.failed_file.connect(lambda k, e: (events.append(("failed", k)), w.results.setdefault(k, e)))
    w.cancelled_file.connect(lambda k: events.append(("cancelled", k)))
    w.finished_file.connect(lambda k, a: w.result_shown())
    with qtbot.waitSignal(w.model_ready, timeout=120_000):
        w.start()
    yield w
    w.stop()


def run(qtbot, worker, items, timeout=120_000):
    with qtbot.waitSignal(worker.queue_done, timeout=timeout):
        worker.enqueue(items)


def test_short_clips_are_decoded_together_as_the_cli_does(qtbot, worker, clips):
    short = [QueueItem(f"s{i}", str(p)) for i, p in enumerate(clips["short"])]
    long, after = QueueItem("long", str(clips["long"])), QueueItem("after", str(clips["after"]))
    run(qtbot, worker, [*short, long, after])
    ev = worker.events
    first_done = min(i for i, (what, _) in enumerate(ev) if what == "finished")
    # the short clips all started before any result: one group (the broken one failed at once)
    assert {k for what, k in ev[:first_done] if what == "started"} >= {"s0", "s1", "s3", "s4"}
    # the long file was kept for after the group and analysed alone; the clip after it too
    assert ev.index(("started", "long")) > max(ev.index(("finished", i.key)) for i in short if i.key != "s2")
    assert ev.index(("finished", "long")) < ev.index(("started", "after"))
    assert "c-broken.wav" in worker.results["s2"].message

    # the same words as the CLI's path over the same clips
    engine = Engine("tiny.en", device="cpu")  # the CLI's engine, as the worker makes it
    good = [p for p in clips["short"] if p is not clips["short"][2]]
    cli = {r.source: r.text for r in engine.analyze_many(good)}
    app = {worker.results[i.key].source: worker.results[i.key].text for i in short if i.key != "s2"}
    assert app == cli
    assert "country" in worker.results["s1"].text.lower()
    assert worker.results["long"].text.lower().count("country") >= 3


def test_cancel_one_row_of_a_group_or_all_of_it(qtbot, worker, clips):
    files = [str(p) for p in clips["short"] if p is not clips["short"][2]]

    # the first row is dropped while the last one is read: the others still get their results
    def drop_first(key):
        if key == "a3":
            worker.cancel(["a0"])

    worker.started_file.connect(drop_first, Qt.ConnectionType.DirectConnection)  # in the worker thread
    run(qtbot, worker, [QueueItem(f"a{i}", f) for i, f in enumerate(files)])
    worker.started_file.disconnect(drop_first)
    ev = worker.events
    assert ("cancelled", "a0") in ev and ("finished", "a0") not in ev
    assert all(("finished", f"a{i}") in ev for i in (1, 2, 3))
    assert ev.index(("started", "a3")) < ev.index(("finished", "a1"))  # one group

    # every row of the group dropped: decoding stops, each says cancelled, nothing is finished
    ev.clear()

    def drop_all(key):
        if key == "b3":
            worker.cancel([f"b{i}" for i in range(4)])

    worker.started_file.connect(drop_all, Qt.ConnectionType.DirectConnection)
    run(qtbot, worker, [QueueItem(f"b{i}", f) for i, f in enumerate(files)])
    worker.started_file.disconnect(drop_all)
    assert sorted(k for what, k in ev if what == "cancelled") == ["b0", "b1", "b2", "b3"]
    assert not [k for what, k in ev if what == "finished"]

    # and the queue goes on
    run(qtbot, worker, [QueueItem("c", files[1])])
    assert "country" in worker.results["c"].text.lower()


def test_options_changed_mid_group_apply_from_the_next_file(qtbot, worker, clips):
    from speechint_desktop.core.options import TranscribeOptions

    files = [str(p) for p in clips["short"] if p is not clips["short"][2]]

    def change(key):
        if key == "o1":  # o1 is being read: it keeps the group's options, o2 on gets the new ones
            worker.set_options(TranscribeOptions(word_timestamps=False))

    worker.started_file.connect(change, Qt.ConnectionType.DirectConnection)
    run(qtbot, worker, [QueueItem(f"o{i}", f) for i, f in enumerate(files)])
    worker.started_file.disconnect(change)
    ev, got = worker.events, worker.results
    assert ev.index(("finished", "o1")) < ev.index(("started", "o2"))  # the group ended at o1
    assert ev.index(("started", "o2")) < ev.index(("finished", "o3"))
    assert all(w for s in got["o1"].segments for w in [s.words]) and got["o1"].segments
    assert got["o2"].segments and not any(s.words for s in got["o2"].segments)
