"""A second launch hands its files to the window already open, and exits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from speechint_desktop.ui import single_instance
from tests.conftest import wait_until_listening

REPO = Path(__file__).resolve().parents[2]


def _env(home: Path, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "QT_QPA_PLATFORM": "offscreen",
        "SPEECHINT_HOME": str(home),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),  # its own settings, not the user's
    }


def _queued(home: Path) -> set[str]:
    """Every path the window's session lists (queued, running or finished)."""
    found = set()
    for f in (home / "sessions").rglob("*"):
        if f.name == "queue.json":
            found |= {row["path"] for row in json.loads(f.read_text())}
        elif f.suffix == ".json" and f.name != "queue.json":
            found.add(json.loads(f.read_text()).get("source"))
    return found


def test_a_second_launch_queues_its_files_in_the_open_window(qapp, tiny_en_dir, jfk_path, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "models").symlink_to(Path(tiny_en_dir).parent)  # the converted tiny.en, not a new one
    (tmp_path / "here").mkdir()
    (tmp_path / "here" / "take.flac").symlink_to(jfk_path)
    env = _env(home, tmp_path)
    name = single_instance.server_name(home)
    first = subprocess.Popen(
        [sys.executable, "-m", "speechint_desktop.ui.app"],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until_listening(first, home, 60)
        t0 = time.monotonic()
        # a relative path, as a shell in another folder passes it
        second = subprocess.run(
            [sys.executable, "-m", "speechint_desktop.ui.app", "take.flac"],
            env=env,
            cwd=tmp_path / "here",
            capture_output=True,
            text=True,
            timeout=60,
        )
        took = time.monotonic() - t0
        assert second.returncode == 0, second.stderr
        assert "1 added to the SpeechInt window already open" in second.stdout
        deadline = time.monotonic() + 60
        while str(tmp_path / "here" / "take.flac") not in _queued(home):
            assert first.poll() is None, first.stdout.read()
            assert time.monotonic() < deadline, f"the open window never queued it: {_queued(home)}"
            time.sleep(0.2)
        assert first.poll() is None  # still the one window
        print(f"\nthe second launch handed its file over and exited in {took:.1f} s")
    finally:
        first.terminate()
        try:
            first.wait(timeout=20)
        except subprocess.TimeoutExpired:
            first.kill()
            first.wait()
        single_instance.QLocalServer.removeServer(name)  # the socket file a killed window leaves


def test_a_stale_socket_is_taken_over_and_nothing_listening_is_no_window(qtbot, tmp_path):
    name = single_instance.server_name(tmp_path)
    assert not single_instance.hand_over(name, ["a.wav"], wait_ms=500)  # nobody listens
    crashed = single_instance.InstanceServer(name)
    assert crashed.listen()
    # a window that died without closing its server leaves the socket file; on Unix a new
    # listen on that name fails until it is removed
    if sys.platform != "win32":
        crashed.server.setParent(None)
        sock_path = crashed.server.fullServerName()
        crashed.server.close()
        Path(sock_path).touch()
    server = single_instance.InstanceServer(name)
    assert server.listen()
    got = []
    server.paths_received.connect(got.append)
    bad = single_instance.QLocalSocket()  # something that is not a launch: dropped, no signal
    bad.connectToServer(name)
    assert bad.waitForConnected(1000)
    bad.write(b"{not json\n")
    bad.flush()
    qtbot.wait(200)
    assert got == []
    server.close()
    assert not single_instance.hand_over(name, ["a.wav"], wait_ms=500)  # closed: nobody listens
