"""The voice's level: the head's reading checked against the P.56 meter.

The voice-level head reads the clean voice's active speech level through noise, but each voice's
spectrum leaves it a few tenths of a dB off (±0.3–0.6 dB on held-out speakers). The mix's P.56
active level is exact when the noise is 20 dB or more below the voice and reads high when it is
not (+0.4 dB at 10 dB SNR, +3 dB at 0 dB). So the two are combined by how far they disagree:
within the head's own error (``tau_db``) they agree, the noise cannot matter and the meter's
exact number stands; the further apart they are, the more the noise has lifted the meter and
the more the head's reading is taken:

    voice = asl - w * (asl - head),   w = 1 - exp(-((asl - head) / tau)^2)

``tau_db`` is the head's own: twice its RMSE on the clean mixtures it was fitted on
(``training.voice_head``), stored with the head (``fusion_tau_db``).
"""

from __future__ import annotations

import math

FUSION_TARGETS = ("voice_asl_dbfs",)  # heads whose number is the P.56 level of the voice
DEFAULT_TAU_DB = 0.8  # heads saved without one (the shipped heads' own is 0.86)


def fused_level(head_db: float | None, asl_db: float | None, tau_db: float | None = None) -> float | None:
    """The voice's active level from the head's reading and the mix's P.56 level (dBFS).

    The head alone when the meter has no number (no active speech), None without a head."""
    if head_db is None or not math.isfinite(head_db):
        return None
    if asl_db is None or not math.isfinite(asl_db):
        return float(head_db)
    tau = DEFAULT_TAU_DB if tau_db is None else float(tau_db)
    d = float(asl_db) - float(head_db)
    w = 1.0 - math.exp(-((d / tau) ** 2)) if tau > 0 else 1.0
    return float(asl_db) - w * d


def tau_from_clean_errors(errors_db) -> float:
    """``tau_db`` for a head: twice its RMSE (dB) on clean speech, where the meter is exact."""
    errs = [float(e) for e in errors_db]
    if not errs:
        return DEFAULT_TAU_DB
    return 2.0 * math.sqrt(sum(e * e for e in errs) / len(errs))
