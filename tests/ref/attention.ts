// f64 CPU reference of softmax attention and its analytic gradients (shared by the attention tests).
export interface Shape {
  B: number;
  H: number;
  Nq: number;
  Nk: number;
  D: number;
}

/** Softmax probabilities P [B·H, Nq, Nk] (masked keys 0) and lse [B·H, Nq]. */
export function refProbs(q: ArrayLike<number>, k: ArrayLike<number>, s: Shape, scale: number, kvLen?: number[]) {
  const { B, H, Nq, Nk, D } = s;
  const P = new Float64Array(B * H * Nq * Nk);
  const lse = new Float64Array(B * H * Nq);
  const row = new Float64Array(Nk);
  for (let bh = 0; bh < B * H; bh++) {
    const n = Math.min(Nk, kvLen ? kvLen[Math.floor(bh / H)]! : Nk);
    for (let i = 0; i < Nq; i++) {
      let mx = -Infinity;
      for (let j = 0; j < n; j++) {
        let dot = 0;
        for (let d = 0; d < D; d++) dot += q[(bh * Nq + i) * D + d]! * k[(bh * Nk + j) * D + d]!;
        row[j] = dot * scale;
        mx = Math.max(mx, row[j]!);
      }
      let sum = 0;
      for (let j = 0; j < n; j++) sum += Math.exp(row[j]! - mx);
      for (let j = 0; j < n; j++) P[(bh * Nq + i) * Nk + j] = Math.exp(row[j]! - mx) / sum;
      lse[bh * Nq + i] = mx + Math.log(sum);
    }
  }
  return { P, lse };
}

/** o = P·v and lse. */
export function refForward(q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, s: Shape, scale: number, kvLen?: number[]) {
  const { B, H, Nq, Nk, D } = s;
  const { P, lse } = refProbs(q, k, s, scale, kvLen);
  const o = new Float64Array(B * H * Nq * D);
  for (let bh = 0; bh < B * H; bh++)
    for (let i = 0; i < Nq; i++)
      for (let j = 0; j < Nk; j++) {
        const pij = P[(bh * Nq + i) * Nk + j]!;
        if (pij === 0) continue;
        for (let d = 0; d < D; d++) o[(bh * Nq + i) * D + d]! += pij * v[(bh * Nk + j) * D + d]!;
      }
  return { o, lse };
}

/** Analytic gradients: dV = Pᵀ·dO, dP = dO·Vᵀ, dS = P∘(dP − rowsum(dO∘O)), dQ = scale·dS·K, dK = scale·dSᵀ·Q. */
export function refBackward(q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, dO: ArrayLike<number>, s: Shape, scale: number, kvLen?: number[]) {
  const { B, H, Nq, Nk, D } = s;
  const { P } = refProbs(q, k, s, scale, kvLen);
  const { o } = refForward(q, k, v, s, scale, kvLen);
  const dq = new Float64Array(B * H * Nq * D);
  const dk = new Float64Array(B * H * Nk * D);
  const dv = new Float64Array(B * H * Nk * D);
  for (let bh = 0; bh < B * H; bh++)
    for (let i = 0; i < Nq; i++) {
      const qi = (bh * Nq + i) * D;
      let Dr = 0;
      for (let d = 0; d < D; d++) Dr += dO[qi + d]! * o[qi + d]!;
      for (let j = 0; j < Nk; j++) {
        const pij = P[(bh * Nq + i) * Nk + j]!;
        if (pij === 0) continue;
        const kj = (bh * Nk + j) * D;
        let dp = 0;
        for (let d = 0; d < D; d++) dp += dO[qi + d]! * v[kj + d]!;
        const ds = pij * (dp - Dr);
        for (let d = 0; d < D; d++) {
          dv[kj + d]! += pij * dO[qi + d]!;
          dq[qi + d]! += scale * ds * k[kj + d]!;
          dk[kj + d]! += scale * ds * q[qi + d]!;
        }
      }
    }
  return { dq, dk, dv };
}
