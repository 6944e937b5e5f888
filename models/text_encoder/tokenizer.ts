// A simple deterministic caption tokenizer for the default (small, random-weight) text encoder: lowercase,
// split into words (runs of letters/digits, apostrophes kept inside words) and single punctuation marks,
// map each piece to an id by a stable 32-bit FNV-1a hash of its UTF-8 bytes into the vocabulary, append
// EOS, truncate (EOS kept last) and pad to maxLength. Ids 0 = pad, 1 = eos, 2 = unk are reserved, as in T5.
// This is not T5's SentencePiece vocabulary: real T5 weights need the real tokenizer (a later issue).

export const PAD_ID = 0;
export const EOS_ID = 1;
export const UNK_ID = 2;
/** Ids below this are reserved (pad, eos, unk); hashed pieces land in [RESERVED_IDS, vocabSize). */
export const RESERVED_IDS = 3;

export interface Tokenized {
  /** [batch, maxLength] token ids, row-major; PAD_ID after the EOS. */
  ids: Int32Array;
  /** [batch, maxLength]: 1 for a real token (EOS included), 0 for padding. Valid tokens are a prefix. */
  mask: Int32Array;
  /** Valid tokens per caption (the mask's row sums), EOS included; always ≥ 1. */
  lengths: number[];
  batch: number;
  maxLength: number;
}

export interface TokenizerOptions {
  vocabSize: number;
  /** Tokens per caption after truncation/padding (Open-Sora: 120). */
  maxLength: number;
}

const WORDS = /[\p{L}\p{N}]+(?:['’][\p{L}\p{N}]+)*|[^\s\p{L}\p{N}]/gu;

/** 32-bit FNV-1a over the UTF-8 bytes of `s` (stable across runs and platforms). */
export function fnv1a32(s: string): number {
  let h = 0x811c9dc5;
  for (const b of new TextEncoder().encode(s)) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

export class HashTokenizer {
  readonly vocabSize: number;
  readonly maxLength: number;

  constructor({ vocabSize, maxLength }: TokenizerOptions) {
    if (!Number.isInteger(vocabSize) || vocabSize <= RESERVED_IDS) {
      throw new Error(`HashTokenizer: vocabSize ${vocabSize} must be an integer > ${RESERVED_IDS} (ids 0..2 are pad, eos, unk)`);
    }
    if (!Number.isInteger(maxLength) || maxLength < 1) throw new Error(`HashTokenizer: maxLength ${maxLength} must be a positive integer (room for at least the EOS)`);
    this.vocabSize = vocabSize;
    this.maxLength = maxLength;
  }

  /** Lowercased words and punctuation marks, in order. */
  pieces(text: string): string[] {
    return text.normalize('NFKC').toLowerCase().match(WORDS) ?? [];
  }

  /** The id of one piece: a stable hash into [RESERVED_IDS, vocabSize). */
  pieceId(piece: string): number {
    if (!piece) return UNK_ID;
    return RESERVED_IDS + (fnv1a32(piece) % (this.vocabSize - RESERVED_IDS));
  }

  /** Ids of one caption: its pieces then EOS, truncated to maxLength with the EOS kept last (no padding). */
  tokenize(text: string): number[] {
    if (typeof text !== 'string') throw new Error(`HashTokenizer: a caption must be a string, got ${typeof text}`);
    const ids = this.pieces(text).slice(0, this.maxLength - 1).map((p) => this.pieceId(p));
    ids.push(EOS_ID);
    return ids;
  }

  /** A batch of captions → ids and mask [batch, maxLength] (padded with PAD_ID / 0 after the EOS). */
  encode(captions: readonly string[]): Tokenized {
    if (!Array.isArray(captions)) throw new Error('HashTokenizer.encode: pass an array of caption strings');
    const L = this.maxLength;
    const batch = captions.length;
    const ids = new Int32Array(batch * L); // PAD_ID = 0
    const mask = new Int32Array(batch * L);
    const lengths: number[] = [];
    captions.forEach((c, b) => {
      const t = this.tokenize(c);
      ids.set(t, b * L);
      mask.fill(1, b * L, b * L + t.length);
      lengths.push(t.length);
    });
    return { ids, mask, lengths, batch, maxLength: L };
  }
}
