// 3-D patchify / unpatchify of video latents as gathers, one thread per output storage word (one f32, or two
// halves when F16; exact copies). Video [B, C, T, H, W], patch (pt, ph, pw), tokens [B, N, F] with
// N = (T/pt)·(H/ph)·(W/pw) in (t, h, w) order and F = C·pt·ph·pw in one of two feature orders:
//   c_last = 0: (c, kt, kh, kw), a Conv3d weight's flattening (patchify; unpatchifyBackward reads it back)
//   c_last = 1: (kt, kh, kw, c), OpenSora STDiT's unpatchify "B (T H W) (pt ph pw C)"
// TO_TOKENS: video → tokens (patchify, unpatchifyBackward); otherwise tokens → video (unpatchify,
// patchifyBackward). Neighbouring threads write neighbouring outputs.
struct Params {
  total: u32,    // output elements
  words: u32,    // output storage words (threads)
  groups_x: u32, // workgroups along x of the folded 2-D grid
  c: u32,
  t: u32,
  h: u32,
  w: u32,
  pt: u32,
  ph: u32,
  pw: u32,
  c_last: u32,
}

@group(0) @binding(0) var<storage, read> src: array<${WORD}>;
@group(0) @binding(1) var<storage, read_write> dst: array<${WORD}>;
@group(0) @binding(2) var<uniform> p: Params;

#if ${F16}
fn src_at(i: u32) -> f32 {
  return unpack2x16float(src[i >> 1u])[i & 1u];
}
#endif

// Source index of output element e.
fn source(e: u32) -> u32 {
  let np = p.pt * p.ph * p.pw; // elements per patch per channel
  let tn = p.t / p.pt;
  let hn = p.h / p.ph;
  let wn = p.w / p.pw;
  let n_tok = tn * hn * wn;
  let f_len = p.c * np;
#if ${TO_TOKENS}
  let f = e % f_len;
  let bn = e / f_len;
  let n = bn % n_tok;
  let b = bn / n_tok;
  var c: u32;
  var kk: u32;
  if (p.c_last == 1u) {
    c = f % p.c;
    kk = f / p.c;
  } else {
    c = f / np;
    kk = f % np;
  }
  let t = (n / (hn * wn)) * p.pt + kk / (p.ph * p.pw);
  let h = ((n / wn) % hn) * p.ph + (kk / p.pw) % p.ph;
  let w = (n % wn) * p.pw + kk % p.pw;
  return (((b * p.c + c) * p.t + t) * p.h + h) * p.w + w;
#else
  let w = e % p.w;
  let h = (e / p.w) % p.h;
  let t = (e / (p.w * p.h)) % p.t;
  let bc = e / (p.w * p.h * p.t);
  let c = bc % p.c;
  let b = bc / p.c;
  let n = ((t / p.pt) * hn + h / p.ph) * wn + w / p.pw;
  let kk = ((t % p.pt) * p.ph + h % p.ph) * p.pw + w % p.pw;
  let f = select(c * np + kk, kk * p.c + c, p.c_last == 1u);
  return (b * n_tok + n) * f_len + f;
#endif
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * p.groups_x) * 256u + lid;
  if (i >= p.words) {
    return;
  }
#if ${F16}
  var hi = 0.0; // the upper half of an odd-sized tensor's last word is padding (0)
  if (2u * i + 1u < p.total) {
    hi = src_at(source(2u * i + 1u));
  }
  dst[i] = pack_f16(src_at(source(2u * i)), hi);
#else
  dst[i] = src[source(i)];
#endif
}
