# Selected PyTorch training-step rows for bench/train_step.ts --torch, from the shared reference script
# (its model and bench() unchanged, without its kernel ceilings and other cases), so one device call can
# time the torch row beside ours in a minute instead of running the whole reference.
# usage: python3 bench/torch_train_step.py <path to torch_reference_bench.py> <case> ... > torch.log
#   cases: stdit-f32, stdit-bf16, dit-f32, dit-bf16
import sys

if len(sys.argv) < 3:
    sys.exit('usage: torch_train_step.py <torch_reference_bench.py> <stdit-f32|stdit-bf16|dit-f32|dit-bf16> ...')
ref = open(sys.argv[1]).read().split("if __name__ == '__main__':")[0]
exec(ref)  # defines torch, bench(), the STDiT/DiT reference model
print(torch.__version__, torch.cuda.get_device_name(), flush=True)
CASES = {
    'stdit-f32': lambda: bench('STDiT-XL/2 16x256', 16, 32, 4, torch.float32),
    'stdit-bf16': lambda: bench('STDiT-XL/2 16x256', 16, 32, 4, torch.bfloat16),
    'dit-f32': lambda: bench('DiT-XL/2 256px', 1, 32, 64, torch.float32, temporal=False),
    'dit-bf16': lambda: bench('DiT-XL/2 256px', 1, 32, 64, torch.bfloat16, temporal=False),
}
for case in sys.argv[2:]:
    if case not in CASES:
        sys.exit(f'unknown case {case!r}; cases: {", ".join(CASES)}')
    CASES[case]()
