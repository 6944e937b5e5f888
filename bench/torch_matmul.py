# PyTorch matmul reference for bench/matmul.ts, same shapes and operand layouts, same GPU, same run.
# usage: python3 bench/torch_matmul.py '<json list of [name, M, N, K, transA, transB]>'
import json, sys
import torch
from _torch_timing import timed

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
cases = json.loads(sys.argv[1])
dev = 'cuda'
for dtype in (torch.float32, torch.float16, torch.bfloat16):
    for name, M, N, K, ta, tb in cases:
        if dtype == torch.float32 and M * N * K >= 8192 ** 3:
            continue
        a = torch.randn(*((K, M) if ta else (M, K)), device=dev, dtype=dtype)
        b = torch.randn(*((N, K) if tb else (K, N)), device=dev, dtype=dtype)
        f = lambda: torch.matmul(a.t() if ta else a, b.t() if tb else b)
        ms = timed(f, 20)
        print(json.dumps({"name": name, "dtype": str(dtype).split('.')[-1], "ms": ms, "tflops": 2 * M * N * K / ms / 1e9}))
