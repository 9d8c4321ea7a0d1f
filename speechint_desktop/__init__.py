"""SpeechInt: transcribe speech and measure its loudness in one pass."""

import os

# Thread pools read these once, when numpy, CTranslate2 or torch first loads, so they are set
# here, before any of them: OpenMP threads that spin while waiting made torch several times
# slower on a shared CPU (RTF 0.88 → 0.12 on 2 busy cores), and numpy's OpenBLAS pool spun on
# both cores after each of the engine's small matrix products, 13 % of a long analysis's CPU
# (perf) taken from CTranslate2's own threads. A value the user set is kept.
for _name, _value in (("OMP_WAIT_POLICY", "PASSIVE"), ("OPENBLAS_NUM_THREADS", "1")):
    os.environ.setdefault(_name, _value)

__version__ = "0.1.0"
