# PyTorch reference for bench/layernorm.ts and bench/adaln.ts: the same row counts, same GPU, same run.
# usage: python3 bench/torch_norm.py '<json {"rows": R, "C": C, "samples": B}>'
# Prints one JSON line per case with forward / backward times (ms) and GB/s counted as our benchmarks count
# them: forward x + y, backward x + dy + dx (+ 8 bytes a row of mean/rstd either way; PyTorch moves those too).
#   layernorm: F.layer_norm with and without weight/bias (backward: autograd of x and, affine, weight/bias).
#   modulate:  F.layer_norm without affine, then ·(1 + scale) + shift per sample (what Open-Sora's eager
#              t2i_modulate does; backward: autograd of x, shift, scale).
# Dtypes: float32, float16, bfloat16 (our f16 rows compare with float16; bf16 is printed for context).
import json, sys
import torch
import torch.nn.functional as F
from _torch_timing import timed

cfg = json.loads(sys.argv[1])
R, C, B = cfg["rows"], cfg["C"], cfg.get("samples", 4)
dev = 'cuda'


def report(case, dtype, eb, fwd, bwd):
    S = R * C * eb
    print(json.dumps({"case": case, "dtype": str(dtype).split('.')[-1], "fwd_ms": fwd, "bwd_ms": bwd,
                      "fwd_gbs": (2 * S + 8 * R) / fwd / 1e6, "bwd_gbs": (3 * S + 8 * R) / bwd / 1e6}))


for dtype in (torch.float32, torch.float16, torch.bfloat16):
    eb = torch.finfo(dtype).bits // 8
    x = (torch.randn(R, C, device=dev) * 0.5 + 0.1).to(dtype).requires_grad_(True)
    dy = torch.randn(R, C, device=dev, dtype=dtype)
    for affine in (True, False):
        w = torch.randn(C, device=dev, dtype=dtype, requires_grad=True) if affine else None
        b = torch.randn(C, device=dev, dtype=dtype, requires_grad=True) if affine else None
        ln = lambda: F.layer_norm(x, (C,), w, b, 1e-6)
        with torch.no_grad():
            fwd = timed(ln, 50, 5, 3)
        y = ln()
        wrt = (x, w, b) if affine else (x,)
        bwd = timed(lambda: torch.autograd.grad(y, wrt, dy, retain_graph=True), 50, 5, 3)
        report('layernorm ' + ('affine' if affine else 'plain'), dtype, eb, fwd, bwd)
    # adaLN modulate, [B, R / B, C] with per-sample shift/scale
    xm = x.detach().view(B, R // B, C).requires_grad_(True)
    shift = torch.randn(B, 1, C, device=dev, dtype=dtype, requires_grad=True)
    scale = torch.randn(B, 1, C, device=dev, dtype=dtype, requires_grad=True)
    mod = lambda: F.layer_norm(xm, (C,), None, None, 1e-6) * (1 + scale) + shift
    with torch.no_grad():
        fwd = timed(mod, 50, 5, 3)
    y = mod()
    bwd = timed(lambda: torch.autograd.grad(y, (xm, shift, scale), dy.view(B, R // B, C), retain_graph=True), 50, 5, 3)
    report('modulate', dtype, eb, fwd, bwd)
