// Text encoder: T5 v1.1 encoder parity with the Hugging Face fixture (tests/fixtures/t5.safetensors), load
// errors naming the bad tensor, relative-position buckets, the hash tokenizer, and the default encoder.
import { suite, assertClose, assertThrows } from './harness.js';
import { readSafetensors } from '../engine/safetensors-file.js';
import { toFloat64, type StFile, type StTensor } from '../engine/safetensors.js';
import {
  MemoTextEncoder,
  createDefaultTextEncoder,
  loadT5,
  loadT5Weights,
  relativePositionBucket,
  HashTokenizer,
  EOS_ID,
  PAD_ID,
  RESERVED_IDS,
} from '../models/text_encoder/index.js';

const s = suite('t5');
const FIXTURE = new URL('../tests/fixtures/t5.safetensors', import.meta.url).pathname;
let cached: StFile | null = null;
const fixture = () => (cached ??= readSafetensors(FIXTURE));

/** A copy of the fixture's tensor map with edits (undefined deletes). */
function edited(edits: Record<string, StTensor | undefined>, metadata?: Record<string, string>): StFile {
  const f = fixture();
  const tensors = new Map(f.tensors);
  for (const [k, t] of Object.entries(edits)) {
    if (t) tensors.set(k, t);
    else tensors.delete(k);
  }
  return { tensors, metadata: metadata ?? f.metadata };
}
const f32Tensor = (shape: number[]): StTensor => ({ dtype: 'F32', shape, bytes: new Uint8Array(shape.reduce((a, b) => a * b, 1) * 4) });

function fixtureRun(file: StFile, opts = {}) {
  const f = fixture();
  const ids = toFloat64(f.tensors.get('input.input_ids')!);
  const mask = toFloat64(f.tensors.get('input.attention_mask')!);
  const [B, L] = f.tensors.get('input.input_ids')!.shape as [number, number];
  const model = loadT5Weights(file, { prefix: 'param.', ...opts });
  return { out: model.forward(ids, mask, B, L), model, ids, mask, B, L };
}

// ---- parity with Hugging Face T5EncoderModel ------------------------------------------------------------
s.test('fixture parity: last hidden state of T5EncoderModel, every position (padding included)', () => {
  const f = fixture();
  const { out, model, mask } = fixtureRun(f);
  const cfg = JSON.parse(f.metadata.config!) as Record<string, number>;
  const c = model.config;
  const same = [c.vocabSize === cfg.vocab_size, c.dModel === cfg.d_model, c.dKv === cfg.d_kv, c.numHeads === cfg.num_heads, c.dFf === cfg.d_ff, c.numLayers === cfg.num_layers, c.numBuckets === cfg.relative_attention_num_buckets, c.maxDistance === cfg.relative_attention_max_distance, c.eps === cfg.layer_norm_epsilon];
  if (same.includes(false)) throw new Error(`config read from the fixture ${JSON.stringify(c)} differs from its metadata`);
  if (mask.indexOf(0) < 0) throw new Error('fixture has no padding; the masked path would go untested');
  assertClose(out, toFloat64(f.tensors.get('output')!), { rtol: 1e-5, what: 'T5 last hidden state' });
});

s.test('fixture parity without the config metadata (config from the shapes) and split over two shards', () => {
  const f = fixture();
  const want = toFloat64(f.tensors.get('output')!);
  assertClose(fixtureRun(edited({}, {})).out, want, { rtol: 1e-5, what: 'no metadata' });
  const a = new Map<string, StTensor>();
  const b = new Map<string, StTensor>();
  [...f.tensors].forEach(([k, t], i) => (i % 2 ? a : b).set(k, t));
  assertClose(fixtureRun([{ tensors: a, metadata: {} }, { tensors: b, metadata: f.metadata }] as unknown as StFile).out, want, { rtol: 1e-5, what: 'two shards' });
});

s.test('padding keys are masked: changing padded token ids leaves the valid positions unchanged', () => {
  const { model, ids, mask, B, L, out } = fixtureRun(fixture());
  const ids2 = Float64Array.from(ids, (t, i) => (mask[i] ? t : (t * 7 + 5) % model.config.vocabSize));
  const out2 = model.forward(ids2, mask, B, L);
  const D = model.config.dModel;
  let changedPad = 0;
  for (let p = 0; p < B * L; p++) {
    for (let d = 0; d < D; d++) {
      const i = p * D + d;
      if (mask[p] && out2[i] !== out[i]) throw new Error(`valid position ${p} changed (${out[i]} → ${out2[i]}) when only padding ids changed`);
      if (!mask[p] && out2[i] !== out[i]) changedPad++;
    }
  }
  if (!changedPad) throw new Error('padding positions did not change with their own ids; the edit had no effect');
  // without the mask the valid positions must change (the padding becomes visible)
  const open = model.forward(ids, null, B, L);
  let diff = 0;
  for (let i = 0; i < L * D; i++) if (mask[Math.floor(i / D)]) diff = Math.max(diff, Math.abs(open[i]! - out[i]!));
  if (diff < 1e-3) throw new Error(`unmasked run matches the masked one (max diff ${diff}); the mask is not used`);
});

s.test('relative position buckets: T5 bidirectional scheme (32 buckets, max distance 128)', () => {
  const want: [number, number][] = [[0, 0], [1, 17], [-1, 1], [7, 23], [-7, 7], [8, 24], [-8, 8], [12, 25], [16, 26], [32, 28], [64, 30], [127, 31], [128, 31], [1000, 31], [-1000, 15], [-127, 15]];
  for (const [rel, b] of want) {
    const got = relativePositionBucket(rel, 32, 128);
    if (got !== b) throw new Error(`bucket(${rel}) = ${got}, expected ${b}`);
  }
  // every bucket in range, monotone in |rel| within a direction
  let prev = -1;
  for (let r = 0; r < 300; r++) {
    const b = relativePositionBucket(r, 32, 128);
    if (b < prev || b > 31 || (r > 0 && b < 16)) throw new Error(`bucket(${r}) = ${b} breaks monotonicity/range`);
    if (r > 0 && relativePositionBucket(-r, 32, 128) !== b - 16) throw new Error(`bucket(-${r}) is not bucket(${r}) − 16`);
    prev = b;
  }
});

// ---- load errors --------------------------------------------------------------------------------------------
s.test('load errors name the missing, unexpected or mis-shaped tensor', async () => {
  const q1 = 'param.encoder.block.1.layer.0.SelfAttention.q.weight';
  await assertThrows(() => loadT5Weights(edited({ [q1]: undefined }), { prefix: 'param.' }), /missing tensor "param\.encoder\.block\.1\.layer\.0\.SelfAttention\.q\.weight" \[32, 32\]/, 'missing q');
  await assertThrows(() => loadT5Weights(edited({ 'param.encoder.final_layer_norm.weight': undefined }), { prefix: 'param.' }), /missing tensor "param\.encoder\.final_layer_norm\.weight"/, 'missing final norm');
  await assertThrows(
    () => loadT5Weights(edited({ 'param.encoder.block.0.layer.0.SelfAttention.extra.weight': f32Tensor([4, 4]) }), { prefix: 'param.' }),
    /unexpected tensor "param\.encoder\.block\.0\.layer\.0\.SelfAttention\.extra\.weight" \[4, 4\]/,
    'extra tensor',
  );
  await assertThrows(
    () => loadT5Weights(edited({ 'param.encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight': f32Tensor([32, 4]) }), { prefix: 'param.' }),
    /unexpected tensor "param\.encoder\.block\.1\.layer\.0\.SelfAttention\.relative_attention_bias\.weight"/,
    'bias table in layer 1',
  );
  await assertThrows(() => loadT5Weights(edited({ 'param.encoder.block.2.layer.0.layer_norm.weight': f32Tensor([32]) }), { prefix: 'param.' }), /unexpected tensor "param\.encoder\.block\.2\.layer\.0\.layer_norm\.weight"/, 'third block');
  const wi1 = 'param.encoder.block.0.layer.1.DenseReluDense.wi_1.weight';
  const e = await assertThrows(() => loadT5Weights(edited({ [wi1]: f32Tensor([48, 31]) }), { prefix: 'param.' }), /tensor "param\.encoder\.block\.0\.layer\.1\.DenseReluDense\.wi_1\.weight" has shape \[48, 31\], expected \[48, 32\]/, 'mis-shaped wi_1');
  if (/problem\(s\)/.test(e.message) && !/^loadT5: 1 problem/.test(e.message)) throw new Error(`one bad tensor reported as several problems: ${e.message}`);
  // without metadata a mis-shaped embedding is still named alone (d_model from the final norm)
  const e2 = await assertThrows(() => loadT5Weights(edited({ 'param.shared.weight': f32Tensor([96, 30]) }, {}), { prefix: 'param.' }), /tensor "param\.shared\.weight" has shape \[96, 30\], expected \[96, 32\]/, 'mis-shaped shared');
  if (!/^loadT5: 1 problem/.test(e2.message)) throw new Error(`mis-shaped shared.weight not reported alone: ${e2.message}`);
  await assertThrows(() => loadT5Weights(edited({ 'param.encoder.block.0.layer.0.layer_norm.weight': { dtype: 'I32', shape: [32], bytes: new Uint8Array(128) } }), { prefix: 'param.' }), /layer_norm\.weight" has dtype I32/, 'integer weights');
  await assertThrows(() => loadT5Weights(edited({ 'param.encoder.block.0.layer.1.DenseReluDense.wi.weight': f32Tensor([48, 32]) }), { prefix: 'param.' }), /T5 v1\.0.*wi_0, wi_1/, 'v1.0 checkpoint');
  await assertThrows(() => loadT5Weights(fixture(), { prefix: 'nothing.' }), /missing tensor/, 'wrong prefix');
});

s.test('load accepts a full checkpoint: decoder/lm_head ignored, encoder.embed_tokens as the tied embedding', () => {
  const f = fixture();
  const want = toFloat64(f.tensors.get('output')!);
  const shared = f.tensors.get('param.shared.weight')!;
  const full = edited({ 'param.decoder.block.0.layer.0.SelfAttention.q.weight': f32Tensor([32, 32]), 'param.lm_head.weight': f32Tensor([96, 32]), 'param.encoder.embed_tokens.weight': shared });
  assertClose(fixtureRun(full).out, want, { rtol: 1e-5, what: 'full checkpoint' });
  const tiedOnly = edited({ 'param.shared.weight': undefined, 'param.encoder.embed_tokens.weight': shared });
  assertClose(fixtureRun(tiedOnly).out, want, { rtol: 1e-5, what: 'embed_tokens only' });
});

s.test('loadT5 gives a TextEncoder over the checkpoint: [B, L, d_model] embeddings, deterministic', () => {
  const enc = loadT5(fixture(), { prefix: 'param.', maxLength: 12 });
  if (enc.captionChannels !== 32 || enc.maxLength !== 12) throw new Error(`captionChannels ${enc.captionChannels}, maxLength ${enc.maxLength}`);
  const a = enc.encode(['a red fox jumps', 'the sea at night, with stars']);
  if (a.emb.length !== 2 * 12 * 32 || a.mask.length !== 24) throw new Error(`shapes: emb ${a.emb.length}, mask ${a.mask.length}`);
  if (a.lengths[0] !== 5 || a.lengths[1] !== 8) throw new Error(`lengths ${a.lengths} (expected 5 and 8: words, punctuation, EOS)`);
  const b = enc.encode(['a red fox jumps', 'the sea at night, with stars']);
  if (a.emb.some((v, i) => v !== b.emb[i])) throw new Error('encode is not deterministic');
});

// ---- tokenizer --------------------------------------------------------------------------------------------
s.test('tokenizer: lowercase words and punctuation, EOS, padding, mask and lengths', () => {
  const t = new HashTokenizer({ vocabSize: 1000, maxLength: 8 });
  const pieces = t.pieces("A Cat's toy, RED!");
  if (JSON.stringify(pieces) !== JSON.stringify(["a", "cat's", 'toy', ',', 'red', '!'])) throw new Error(`pieces ${JSON.stringify(pieces)}`);
  const r = t.encode(['A cat, sitting.', 'a CAT, Sitting.', '']);
  const row = (b: number) => Array.from(r.ids.subarray(b * 8, b * 8 + 8));
  const mrow = (b: number) => Array.from(r.mask.subarray(b * 8, b * 8 + 8));
  if (row(0).join() !== row(1).join()) throw new Error('case changed the ids');
  // a, cat, ",", sitting, "." then EOS
  if (r.lengths.join() !== '6,6,1') throw new Error(`lengths ${r.lengths}`);
  if (row(0)[5] !== EOS_ID || row(0).slice(6).some((v) => v !== PAD_ID)) throw new Error(`row 0 ${row(0)}: EOS then padding expected`);
  if (row(0).slice(0, 5).some((v) => v < RESERVED_IDS || v >= 1000)) throw new Error(`piece ids ${row(0)} outside [3, 1000)`);
  if (mrow(0).join() !== '1,1,1,1,1,1,0,0' || mrow(2).join() !== '1,0,0,0,0,0,0,0') throw new Error(`masks ${mrow(0)} / ${mrow(2)}`);
  if (row(2)[0] !== EOS_ID || row(2).slice(1).some((v) => v !== PAD_ID)) throw new Error('empty caption must be just the EOS');
  if (new Set(row(0).slice(0, 5)).size !== 5) throw new Error(`distinct pieces share ids: ${row(0)}`);
});

s.test('tokenizer: deterministic, different captions give different ids, truncation keeps the EOS', async () => {
  const t = new HashTokenizer({ vocabSize: 32128, maxLength: 6 });
  const a = t.tokenize('a dog runs on the beach');
  if (a.join() !== t.tokenize('a dog runs on the beach').join()) throw new Error('not deterministic');
  if (a.join() !== new HashTokenizer({ vocabSize: 32128, maxLength: 6 }).tokenize('a dog runs on the beach').join()) throw new Error('differs across instances');
  if (a.length !== 6 || a[5] !== EOS_ID) throw new Error(`truncated ids ${a}: expected 5 words then EOS`);
  const b = t.tokenize('a cat runs on the beach');
  if (a.join() === b.join()) throw new Error('different captions gave the same ids');
  const full = t.encode(['one two three four five six seven eight']);
  if (full.lengths[0] !== 6 || full.mask.some((m) => m !== 1)) throw new Error(`truncated caption: length ${full.lengths[0]}, mask ${full.mask}`);
  // a fixed id: the hash is stable across runs and platforms (FNV-1a of "dog" into [3, 32128))
  if (t.pieceId('dog') !== RESERVED_IDS + (0xe668bd09 % (32128 - RESERVED_IDS))) throw new Error(`pieceId('dog') = ${t.pieceId('dog')}`);
  await assertThrows(() => new HashTokenizer({ vocabSize: 3, maxLength: 4 }), /vocabSize 3/, 'tiny vocab');
  await assertThrows(() => new HashTokenizer({ vocabSize: 100, maxLength: 0 }), /maxLength 0/, 'zero length');
});

// ---- default encoder ----------------------------------------------------------------------------------------
const rms = (v: ArrayLike<number>, from: number, to: number) => {
  let s2 = 0;
  for (let i = from; i < to; i++) s2 += v[i]! ** 2;
  return Math.sqrt(s2 / (to - from));
};

s.test('default encoder: same caption same embedding, different captions clearly different, finite O(1)', () => {
  const C = 32;
  const L = 16;
  const enc = createDefaultTextEncoder({ seed: 3, captionChannels: C, maxLength: L });
  if (enc.captionChannels !== C || enc.maxLength !== L) throw new Error('channels / length');
  const caps = ['a red car drives through the city at night', 'a red car drives through the city at noon', 'waves crash on a rocky shore'];
  const r = enc.encode(caps);
  if (r.emb.length !== 3 * L * C) throw new Error(`emb length ${r.emb.length}`);
  for (let i = 0; i < r.emb.length; i++) if (!Number.isFinite(r.emb[i]!)) throw new Error(`emb[${i}] = ${r.emb[i]}`);
  for (let p = 0; p < 3 * L; p++) {
    const v = rms(r.emb, p * C, (p + 1) * C);
    if (v < 0.3 || v > 3) throw new Error(`token ${p} has RMS ${v}; expected O(1)`);
  }
  // batch independence and determinism across fresh encoders built from the same seed
  const again = createDefaultTextEncoder({ seed: 3, captionChannels: C, maxLength: L }).encode([caps[1]!]);
  for (let i = 0; i < L * C; i++) if (again.emb[i] !== r.emb[L * C + i]) throw new Error(`caption 1 alone differs at ${i}: not deterministic or batch-dependent`);
  // different captions: relative difference over valid tokens
  const relDiff = (a: number, b: number) => {
    const n = Math.min(r.lengths[a]!, r.lengths[b]!) * C;
    let d = 0;
    let w = 0;
    for (let i = 0; i < n; i++) {
      d += (r.emb[a * L * C + i]! - r.emb[b * L * C + i]!) ** 2;
      w += r.emb[a * L * C + i]! ** 2;
    }
    return Math.sqrt(d / w);
  };
  if (relDiff(0, 2) < 0.5) throw new Error(`unrelated captions differ by only ${relDiff(0, 2)} relative`);
  if (relDiff(0, 1) < 0.05) throw new Error(`captions differing in one word differ by only ${relDiff(0, 1)} relative`);
  // the one-word change reaches the other tokens (attention mixes tokens)
  const first = rms(Float32Array.from({ length: C }, (_, i) => r.emb[i]! - r.emb[L * C + i]!), 0, C);
  if (first < 1e-3) throw new Error(`token 0 identical for captions that differ in their last word (RMS diff ${first}); no attention mixing`);
  // another seed: another encoder
  const other = createDefaultTextEncoder({ seed: 4, captionChannels: C, maxLength: L }).encode([caps[0]!]);
  if (rms(Float32Array.from({ length: L * C }, (_, i) => other.emb[i]! - r.emb[i]!), 0, L * C) < 0.3) throw new Error('seed 4 gives nearly the seed-3 embedding');
});

s.test('default encoder with a projection to wide captions (C 512 from d_model 64), lengths and mask', () => {
  const enc = createDefaultTextEncoder({ seed: 1, captionChannels: 512, maxLength: 10 });
  if (enc.model.config.dModel !== 64 || enc.captionChannels !== 512) throw new Error(`dModel ${enc.model.config.dModel}, C ${enc.captionChannels}`);
  const r = enc.encode(['a small boat', 'one two three four five six seven eight nine ten eleven']);
  if (r.lengths.join() !== '4,10') throw new Error(`lengths ${r.lengths}`);
  if (r.mask.join() !== '1,1,1,1,0,0,0,0,0,0,1,1,1,1,1,1,1,1,1,1') throw new Error(`mask ${r.mask}`);
  for (let p = 0; p < 20; p++) {
    const v = rms(r.emb, p * 512, (p + 1) * 512);
    if (!(v > 0.3 && v < 3)) throw new Error(`token ${p} RMS ${v}`);
  }
});
s.run();

s.test('memo encoder: bit-identical to the wrapped encoder, encodes each unseen caption once, LRU within its byte budget', async () => {
  const C = 16;
  const L = 8;
  const plain = createDefaultTextEncoder({ seed: 5, captionChannels: C, maxLength: L });
  const memo = new MemoTextEncoder(createDefaultTextEncoder({ seed: 5, captionChannels: C, maxLength: L }), 3 * (L * C * 4 + L * 4));
  const same = (caps: string[]) => {
    const [a, b] = [plain.encode(caps), memo.encode(caps)];
    if (a.emb.length !== b.emb.length || a.emb.some((v, i) => v !== b.emb[i])) throw new Error(`embeddings of ${caps.join(' | ')} differ`);
    if (a.mask.join() !== b.mask.join() || a.lengths.join() !== b.lengths.join() || b.batch !== caps.length) throw new Error('mask/lengths/batch differ');
  };
  const enc = () => memo.encoded;
  const kept = () => memo.size;
  same(['a red circle', 'a blue square moving left', 'a red circle']);
  if (enc() !== 2 || kept() !== 2) throw new Error(`after 2 distinct captions: encoded ${enc()}, kept ${kept()}`);
  same(['a blue square moving left', 'a red circle']);
  if (enc() !== 2) throw new Error(`repeated captions were encoded again (${enc()})`);
  same(['green', 'yellow', 'a red circle']); // 4 distinct > budget of 3: the least recently used (blue square) goes
  if (enc() !== 4 || kept() !== 3) throw new Error(`encoded ${enc()}, kept ${kept()}; expected 4 and 3`);
  same(['a red circle']);
  if (enc() !== 4) throw new Error('a recently used caption was dropped');
  same(['a blue square moving left']);
  if (enc() !== 5) throw new Error('the least recently used caption was kept beyond the budget');
  await assertThrows(() => new MemoTextEncoder(plain, -1), /budgetBytes -1 must be ≥ 0/, 'negative budget');
});
