"""Where the model runs: CUDA when present, else the CPU; a one-line error for a bad request."""

from __future__ import annotations

from dataclasses import dataclass

DEVICE_CHOICES = ("auto", "cpu", "cuda")


class DeviceError(ValueError):
    """A device the user asked for is not available; ``str()`` is one user-facing line."""


@dataclass
class DeviceInfo:
    name: str  # what pick_device accepts: "cpu", "cuda:0", ...
    label: str  # for people: "CPU (2 cores)", "NVIDIA RTX 4090 (24.0 GB)"
    kind: str  # "cpu" or "cuda"


@dataclass(frozen=True)
class Device:
    """A device named without torch (the CTranslate2 engine imports none): ``type`` and ``index``
    as ``torch.device`` has them, and ``str()`` what torch accepts."""

    type: str
    index: int | None = None

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"


def _cuda_count(torch_free: bool) -> int:
    if torch_free:  # CTranslate2 sees the GPUs it can use, without torch's import
        import ctranslate2

        return int(ctranslate2.get_cuda_device_count())
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def pick_device(name: str | None = "auto", torch_free: bool = False):
    """``"auto"`` → first CUDA GPU if any, else CPU; ``"cuda"``/``"cuda:N"`` must exist.

    A ``torch.device``, or with ``torch_free`` a ``Device`` (GPUs counted by CTranslate2).
    """
    name = (name or "auto").strip().lower()
    if name not in ("auto", "cpu", "cuda") and not name.startswith("cuda:"):
        raise DeviceError(f"unknown device {name!r} (use auto, cpu, cuda or cuda:N)")
    kind, index = "cpu", None
    if name != "cpu":
        count = _cuda_count(torch_free)
        if name == "auto":
            kind, index = ("cuda", 0) if count else ("cpu", None)
        else:
            index = 0
            if ":" in name:
                try:
                    index = int(name.split(":", 1)[1])
                except ValueError:
                    raise DeviceError(f"unknown device {name!r} (use auto, cpu, cuda or cuda:N)") from None
            if not count:
                raise DeviceError(
                    f"device {name!r} requested but no CUDA GPU is available (use --device cpu)"
                )
            if not 0 <= index < count:
                raise DeviceError(f"device {name!r} does not exist (this machine has {count} CUDA GPU(s))")
            kind = "cuda"
    if torch_free:
        return Device(kind, index)
    import torch

    return torch.device(kind if index is None else f"{kind}:{index}")


def list_devices() -> list[DeviceInfo]:
    """The CPU, then every CUDA GPU with its name and memory. GPUs are counted first without
    torch (CTranslate2's count, when it is installed): on a machine without one, the app's
    device menu then costs no torch import (a second, and 200 MB it would keep)."""
    import os

    devices = [DeviceInfo("cpu", f"CPU ({os.cpu_count() or 1} cores)", "cpu")]
    try:
        if not _cuda_count(torch_free=True):
            return devices
    except ImportError:
        pass
    import torch

    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            devices.append(DeviceInfo(f"cuda:{i}", f"{p.name} ({p.total_memory / 1e9:.1f} GB)", "cuda"))
    return devices
