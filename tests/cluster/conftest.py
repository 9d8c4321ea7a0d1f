"""A real local Ray cluster for the cluster tests: head and worker nodes as ``ray start`` processes.

Each node is ``ray start --block`` (one CPU) in its own process group, so the test knows every
process of a node — the node's own, its raylet's and its workers' — and can kill exactly those
(never ``ray stop``, which would stop any other Ray on the machine). The cluster lives under a
short temporary directory (Unix socket paths are limited to 107 characters).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

pytest.importorskip("ray", reason="the cluster extra is not installed (pip install -e '.[cluster]')")

RAY = Path(sys.executable).parent / "ray"


# A loopback address other than 127.0.0.1: Ray rewrites 127.0.0.1/localhost in a cluster address
# to the machine's network address, so the nodes and the driver would talk over that interface.
HOST = "127.0.0.2"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def node_env() -> dict[str, str]:
    """What every process of the test cluster and its driver inherit: this checkout first."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.update(
        RAY_USAGE_STATS_ENABLED="0",
        OMP_WAIT_POLICY="PASSIVE",
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONUNBUFFERED="1",
        # explicit: otherwise a token left in ~/.ray by any local ray.init turns token auth on
        # for the head only (a loopback-only test cluster needs none)
        RAY_AUTH_MODE="disabled",
    )
    return env


def tree(pid: int) -> list:
    """``pid`` and all its descendants (psutil processes), now."""
    import psutil

    try:
        p = psutil.Process(pid)
        return [p, *p.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def kill_tree(pid: int) -> None:
    """SIGKILL a process and every descendant, by PID, then its process group (``pid`` leads
    one: ``start_new_session``), which holds any of its children that left the tree."""
    import psutil

    procs = tree(pid)
    for p in procs:
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    psutil.wait_procs(procs, timeout=10)


class Cluster:
    def __init__(self, root: Path):
        self.root = root
        self.port = free_port()
        self.address = f"{HOST}:{self.port}"
        self.nodes: list[subprocess.Popen] = []

    def _ports(self) -> list[str]:
        names = (
            "--node-manager-port",
            "--object-manager-port",
            "--dashboard-agent-listen-port",
            "--dashboard-agent-grpc-port",
            "--metrics-export-port",
            "--runtime-env-agent-port",
        )
        return [f"{n}={free_port()}" for n in names]

    def start_node(self, head: bool) -> subprocess.Popen:
        cmd = [str(RAY), "start", "--block", "--num-cpus=1", "--num-gpus=0", f"--node-ip-address={HOST}"]
        cmd += ["--object-store-memory=150000000", "--disable-usage-stats", *self._ports()]
        if head:
            cmd += ["--head", f"--port={self.port}", "--include-dashboard=false", f"--temp-dir={self.root}"]
        else:
            cmd += [f"--address={self.address}"]
        log = open(self.root / f"node{len(self.nodes)}.log", "w")  # noqa: SIM115 (closed with the node)
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=node_env(), cwd=REPO, start_new_session=True
        )
        proc.log = log
        self.nodes.append(proc)
        return proc

    def wait_nodes(self, n: int, timeout: float = 180) -> None:
        """Until ``n`` nodes are alive in the cluster (asked through a throwaway driver)."""
        code = (
            f"import ray; ray.init(address={self.address!r}, _node_ip_address={HOST!r}, "
            "logging_level='ERROR'); print(sum(n['Alive'] for n in ray.nodes()))"
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for p in self.nodes:
                if p.poll() is not None:
                    tail = Path(p.log.name).read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"ray start exited ({p.returncode}):\n{tail}")
            try:
                r = subprocess.run(
                    [sys.executable, "-c", code], capture_output=True, text=True, env=node_env(), timeout=60
                )
            except subprocess.TimeoutExpired:  # a driver that hung (once, on a loaded machine): ask again
                continue
            if r.returncode == 0 and r.stdout.strip().splitlines()[-1:] == [str(n)]:
                return
            time.sleep(1)
        raise TimeoutError(f"the cluster did not reach {n} nodes in {timeout} s")

    def stop(self) -> None:
        for p in reversed(self.nodes):
            kill_tree(p.pid)
            p.wait(timeout=10)
            p.log.close()


@pytest.fixture
def ray_cluster():
    """A head and a worker node, one CPU each, on the loopback interface; killed by PID afterwards."""
    root = Path(tempfile.mkdtemp(prefix="si-ray-", dir="/tmp"))
    cluster = Cluster(root)
    try:
        cluster.start_node(head=True)
        cluster.start_node(head=False)
        cluster.wait_nodes(2)
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
