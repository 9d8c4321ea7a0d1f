"""How long does a first-use model conversion take, and how does it compare to loading it after?

Prints seconds and ratios; asserts nothing. Converts a catalogue model's CT2 files (already
installed packages only: nothing is downloaded) into a temporary folder, then times loading the
converted checkpoint with transformers and the CT2 original with ctranslate2.

    .venv/bin/python benchmark/convert_ct2.py [--model tiny.en] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmark.common import best  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny.en")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    import ctranslate2
    import torch  # noqa: F401  (import cost is not conversion cost)
    from transformers import WhisperForConditionalGeneration

    from speechint_desktop.core import catalog
    from speechint_desktop.core.convert_ct2 import convert_ct2, read_ct2_model

    spec = catalog.CATALOG[args.model]
    files = [catalog._installed_files(p) for p in spec.packages]
    if not all(files):
        raise SystemExit(f"install {', '.join(spec.packages)} first (speechint models install {args.model})")
    parts = [Path(f.model_bin) for f in files]
    side = [str(Path(f.model_bin).parent) for f in files]
    size_mb = sum(p.stat().st_size for p in parts) / 1e6

    t_read = best(lambda: read_ct2_model(parts), args.repeat)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / args.model
        t_convert = best(lambda: convert_ct2(parts, out, args.model, aux_dirs=side), args.repeat)
        t_load_hf = best(lambda: WhisperForConditionalGeneration.from_pretrained(out), args.repeat)
    ct2_dir = parts[0].parent if len(parts) == 1 else None
    t_load_ct2 = (
        best(
            lambda: ctranslate2.models.Whisper(str(ct2_dir), device="cpu", compute_type="float32"),
            args.repeat,
        )
        if ct2_dir is not None
        else float("nan")
    )

    print(f"model {args.model}: model.bin {size_mb:.0f} MB in {len(parts)} part(s), best of {args.repeat}")
    print(f"  read model.bin          {t_read:6.2f} s  ({size_mb / t_read:.0f} MB/s)")
    print(f"  full conversion         {t_convert:6.2f} s  (once per model, on first use)")
    print(f"  load converted (HF)     {t_load_hf:6.2f} s")
    print(f"  load original (CT2)     {t_load_ct2:6.2f} s")
    print(f"  conversion / HF load    {t_convert / t_load_hf:6.1f} x")


if __name__ == "__main__":
    main()
