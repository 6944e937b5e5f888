// f64 CPU reference of matmul (shared by the matmul and browser tests).

export function geluRef(x: number): number {
  return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
}

interface RefArgs {
  batch: number;
  M: number;
  N: number;
  K: number;
  transA?: boolean;
  transB?: boolean;
  sharedB?: boolean;
  bias?: ArrayLike<number>;
  gelu?: boolean;
}

export function matmulRef(a: ArrayLike<number>, b: ArrayLike<number>, r: RefArgs): Float64Array {
  const { batch, M, N, K } = r;
  const out = new Float64Array(batch * M * N);
  for (let z = 0; z < batch; z++) {
    const ao = z * M * K;
    const bo = r.sharedB ? 0 : z * K * N;
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) {
          const av = a[ao + (r.transA ? k * M + m : m * K + k)]!;
          const bv = b[bo + (r.transB ? n * K + k : k * N + n)]!;
          s += av * bv;
        }
        if (r.bias) s += r.bias[n]!;
        out[z * M * N + m * N + n] = r.gelu ? geluRef(s) : s;
      }
    }
  }
  return out;
}
