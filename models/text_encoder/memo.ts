// A memo in front of a text encoder: training sees the same captions again and again (the built-in dataset
// has 180), and encoding 64 captions with the CPU T5 costs more than the GPU step of the small model. Each
// caption's rows (embedding, mask, length) are kept up to a byte budget, least recently used dropped first;
// a batch encodes only its unseen captions, once each. Encoders are deterministic per caption (a caption's
// rows do not depend on the rest of its batch), so the result is bit for bit the wrapped encoder's.
import type { TextEncoder, TextEncoding } from './index.js';

interface Entry {
  emb: Float32Array;
  mask: Int32Array;
  length: number;
}

export class MemoTextEncoder implements TextEncoder {
  readonly captionChannels: number;
  readonly maxLength: number;
  private readonly entries = new Map<string, Entry>();
  private bytes = 0;
  /** Captions encoded by the wrapped encoder so far (misses). */
  encoded = 0;

  constructor(
    readonly inner: TextEncoder,
    /** Most bytes of embeddings kept (default 256 MiB). */
    readonly budgetBytes = 256 * 2 ** 20,
  ) {
    if (!(budgetBytes >= 0)) throw new RangeError(`MemoTextEncoder: budgetBytes ${budgetBytes} must be ≥ 0`);
    this.captionChannels = inner.captionChannels;
    this.maxLength = inner.maxLength;
    if (inner.nullEmbedding) this.nullEmbedding = (batch: number) => inner.nullEmbedding!(batch);
  }

  nullEmbedding?: (batch: number) => TextEncoding;

  /** Captions currently kept. */
  get size(): number {
    return this.entries.size;
  }

  encode(captions: readonly string[]): TextEncoding {
    const L = this.maxLength;
    const C = this.captionChannels;
    const missing = [...new Set(captions.filter((c) => !this.entries.has(c)))];
    const fresh = new Map<string, Entry>();
    if (missing.length) {
      const e = this.inner.encode(missing);
      this.encoded += missing.length;
      missing.forEach((c, i) => {
        fresh.set(c, { emb: e.emb.slice(i * L * C, (i + 1) * L * C), mask: e.mask.slice(i * L, (i + 1) * L), length: e.lengths[i]! });
      });
    }
    const B = captions.length;
    const emb = new Float32Array(B * L * C);
    const mask = new Int32Array(B * L);
    const lengths: number[] = [];
    captions.forEach((c, b) => {
      const hit = this.entries.get(c);
      const entry = hit ?? fresh.get(c)!;
      if (hit) {
        this.entries.delete(c); // most recently used goes last
        this.entries.set(c, hit);
      }
      emb.set(entry.emb, b * L * C);
      mask.set(entry.mask, b * L);
      lengths.push(entry.length);
    });
    for (const [c, entry] of fresh) this.keep(c, entry);
    return { emb, mask, lengths, batch: B, maxLength: L, captionChannels: C };
  }

  private keep(caption: string, e: Entry): void {
    const size = e.emb.byteLength + e.mask.byteLength;
    if (size > this.budgetBytes) return;
    this.entries.set(caption, e);
    this.bytes += size;
    for (const [c, old] of this.entries) {
      if (this.bytes <= this.budgetBytes) break;
      this.entries.delete(c);
      this.bytes -= old.emb.byteLength + old.mask.byteLength;
    }
  }
}
