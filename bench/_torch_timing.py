# CUDA-event timing shared by the PyTorch reference scripts (torch_attention.py, torch_matmul.py, torch_norm.py).
import torch


def timed(f, iters=20, warmup=3, rounds=1):
    """Milliseconds per call of f: `warmup` calls, then the best of `rounds` timed runs of `iters` calls."""
    for _ in range(warmup):
        f()
    torch.cuda.synchronize()
    best = float('inf')
    for _ in range(rounds):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        for _ in range(iters):
            f()
        e.record()
        torch.cuda.synchronize()
        best = min(best, s.elapsed_time(e) / iters)
    return best
