# PyTorch SDPA reference for bench/attention.ts: same shapes, f32 / f16 / bf16, same GPU, same run.
# usage: python3 bench/torch_attention.py '<json list of [name, B, H, Nq, Nk, D]>'
# Prints one JSON line per case: forward and backward (autograd of q, k, v) times and TFLOP/s, counting
# 4·B·H·Nq·Nk·D forward and 2.5× that backward.
import json, sys
import torch
import torch.nn.functional as F
from _torch_timing import timed

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
cases = json.loads(sys.argv[1])
dev = 'cuda'


for (name, B, H, Nq, Nk, D), dtype in [(c, t) for t in (torch.float32, torch.float16, torch.bfloat16) for c in cases]:
    q = torch.randn(B, H, Nq, D, device=dev, dtype=dtype, requires_grad=True)
    k = torch.randn(B, H, Nk, D, device=dev, dtype=dtype, requires_grad=True)
    v = torch.randn(B, H, Nk, D, device=dev, dtype=dtype, requires_grad=True)
    flops = 4 * B * H * Nq * Nk * D
    iters = max(3, min(30, round(3e12 / flops)))
    with torch.no_grad():
        fwd = timed(lambda: F.scaled_dot_product_attention(q, k, v), iters)
    o = F.scaled_dot_product_attention(q, k, v)
    do = torch.randn_like(o)
    bwd = timed(lambda: torch.autograd.grad(o, (q, k, v), do, retain_graph=True), iters)
    print(json.dumps({"name": name, "dtype": str(dtype).split('.')[-1], "fwd_ms": fwd, "bwd_ms": bwd, "fwd_tflops": flops / fwd / 1e9, "bwd_tflops": 2.5 * flops / bwd / 1e9}))
