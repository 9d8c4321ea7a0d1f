"""The CPU default's int8 output projection: close to float32, and a row's result independent
of the rows batched with it (torch's dynamic int8 alone quantises the batch with one scale)."""

from __future__ import annotations

import torch
from torch import nn

from speechint_desktop.core.quant import RowInt8Linear


def test_rows_do_not_depend_on_the_batch_and_stay_close_to_float32():
    torch.manual_seed(0)
    lin = nn.Linear(64, 500, bias=False)
    q = RowInt8Linear(lin)
    x = torch.randn(5, 3, 64)
    x[1] *= 30  # a loud row must not coarsen the others
    with torch.inference_mode():
        whole = q(x)
        for i in range(5):
            assert torch.equal(whole[i : i + 1], q(x[i : i + 1]))
        ref = lin(x)
        rel = (whole - ref).norm(dim=-1) / ref.norm(dim=-1)
        assert float(rel.max()) < 0.02
    # plain dynamic int8 does depend on the batch: what this class exists for
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    dyn = quantize_dynamic(nn.Sequential(lin), {nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8)[0]
    with torch.inference_mode():
        assert not torch.equal(dyn(x)[:1], dyn(x[:1]))
