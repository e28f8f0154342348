/**
 * Tokenizers turn texts into padded id batches for the encoder. The built-in one hashes words
 * into the vocabulary, so it needs no vocabulary file and every node maps a word to the same id.
 * A Hugging Face tokenizer.json sits behind the same interface (hf/tokenizer.ts).
 */

/** RoBERTa's special token ids. */
export const BOS_ID = 0
export const PAD_ID = 1
export const EOS_ID = 2
export const UNK_ID = 3
/** Ids below this are reserved for the specials above. */
export const FIRST_WORD_ID = 4

export interface EncodedBatch {
  /** [batch, seqLen] row-major: <s> tokens </s> <pad>... */
  inputIds: Int32Array
  /** [batch, seqLen]: 1 for real tokens (including <s> and </s>), 0 for padding. */
  attentionMask: Int32Array
  batch: number
  seqLen: number
}

export interface EncodeOptions {
  /** Pad every row to maxLen instead of to the longest row of the batch (the default). */
  padToMaxLen?: boolean
}

export interface Tokenizer {
  readonly vocabSize: number
  readonly padId: number
  /** maxLen counts <s> and </s>; longer texts are truncated. */
  encodeBatch(texts: string[], maxLen: number, opts?: EncodeOptions): EncodedBatch
}

/** Lowercased words (letters, digits and combining marks) and single punctuation characters. */
export function splitWords(text: string): string[] {
  return text.normalize('NFKC').toLowerCase().match(WORD_RE) ?? []
}

const WORD_RE = /[\p{L}\p{N}\p{M}]+|[^\s\p{L}\p{N}\p{M}]/gu

/** FNV-1a, 32 bits, over the UTF-8 bytes of s. */
export function fnv1a32(s: string): number {
  let h = 0x811c9dc5
  for (const b of utf8.encode(s)) {
    h ^= b
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}

const utf8 = new TextEncoder()

export class HashedWordTokenizer implements Tokenizer {
  readonly padId = PAD_ID

  constructor(readonly vocabSize: number) {
    if (!Number.isInteger(vocabSize) || vocabSize <= FIRST_WORD_ID) {
      throw new Error(`hashed-word tokenizer needs vocab_size > ${FIRST_WORD_ID}, got ${vocabSize}`)
    }
  }

  wordId(word: string): number {
    return FIRST_WORD_ID + (fnv1a32(word) % (this.vocabSize - FIRST_WORD_ID))
  }

  /** Ids of one text without specials. */
  tokenize(text: string): number[] {
    return splitWords(text).map((w) => this.wordId(w))
  }

  encodeBatch(texts: string[], maxLen: number, opts: EncodeOptions = {}): EncodedBatch {
    return padBatch(
      texts.map((t) => this.tokenize(t)),
      maxLen,
      opts,
    )
  }
}

/** Built-in tokenizer in one call. */
export function encodeBatch(texts: string[], maxLen: number, vocabSize: number, opts: EncodeOptions = {}): EncodedBatch {
  return new HashedWordTokenizer(vocabSize).encodeBatch(texts, maxLen, opts)
}

/** Wraps id rows (without specials) as <s> ids </s>, truncated to maxLen, right-padded. */
export function padBatch(rows: number[][], maxLen: number, opts: EncodeOptions = {}): EncodedBatch {
  if (!Number.isInteger(maxLen) || maxLen < 2) throw new Error(`maxLen must be an integer >= 2 (room for <s> and </s>), got ${maxLen}`)
  const lens = rows.map((r) => Math.min(r.length, maxLen - 2) + 2)
  const seqLen = opts.padToMaxLen ? maxLen : Math.max(2, ...lens)
  const batch = rows.length
  const inputIds = new Int32Array(batch * seqLen).fill(PAD_ID)
  const attentionMask = new Int32Array(batch * seqLen)
  for (let b = 0; b < batch; b++) {
    const o = b * seqLen
    const n = lens[b] - 2
    inputIds[o] = BOS_ID
    for (let i = 0; i < n; i++) inputIds[o + 1 + i] = rows[b][i]
    inputIds[o + 1 + n] = EOS_ID
    attentionMask.fill(1, o, o + n + 2)
  }
  return { inputIds, attentionMask, batch, seqLen }
}
