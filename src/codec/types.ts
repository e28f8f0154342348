import type { TensorMap } from '../model/tensors.js'

/**
 * Codec contracts. A codec turns a whole delta into one byte section per tensor (so it may choose
 * globally, e.g. a top-k across all tensors) but decodes one tensor at a time (so fusion can
 * stream). The container (container.ts) owns framing, metadata, checksums and validation;
 * codecs only own their section format. Codecs are added with registerCodec (registry.ts).
 */

/** Codec parameters as written in the payload header: a flat object of integers, keys sorted. */
export type CodecParams = Readonly<Record<string, number>>

/** User-facing compression settings (from the swarm settings). */
export interface CodecSettings {
  codec: string
  /** Blockwise codecs (q8-block, q4-block, q1-block, topk-q*): values per block (default DEFAULT_BLOCK_SIZE). */
  blockSize?: number
  /** topk-*: kept values per million (default DEFAULT_DENSITY_PPM). */
  densityPpm?: number
}

/** What binds a payload to its round: carried in the header, covered by the checksum and the id. */
export interface DeltaMeta {
  round: number
  /** sha256 hex of the base the delta was computed against. */
  baseHash: string
  /** Number of local training examples behind the delta (for weighted rules). */
  examples: number
}

export interface EncodedSections {
  /** One byte section per tensor, in the order of the `names` given to encode. */
  sections: Uint8Array[]
  /**
   * What a receiver will decode, bit for bit. The trainer keeps (delta - reconstruction) as the
   * error-feedback residual and adds it to the next round's delta.
   */
  reconstruction: TensorMap
}

export interface Codec {
  readonly id: string
  /**
   * Write container format 2, whose header names the tensor layout by its digest instead of
   * listing every name and shape (3 KB on the built-in model: a third of a 100x-compressed
   * delta). The first codecs (f32, q8-block) keep format 1, so their payloads do not change.
   */
  readonly layoutDigest?: boolean
  /** Header params from user settings; throws RangeError on bad settings (a local mistake). */
  paramsFromSettings(settings: CodecSettings): CodecParams
  /** Validate params read from a payload; throws PayloadError (a remote, untrusted input). */
  checkParams(raw: Readonly<Record<string, unknown>>): CodecParams
  /**
   * Encode every tensor of `delta`, `names` in canonical order. Must be deterministic (same
   * input, same bytes on every machine) and must never produce a section that decodeInto rejects:
   * throw RangeError on non-finite input instead.
   */
  encode(delta: TensorMap, names: readonly string[], params: CodecParams): EncodedSections
  /**
   * Cheap structural check done when a payload is opened, before any value is decoded: can a
   * section of `byteLength` bytes hold `n` values? Returns a problem description or null.
   */
  checkSection(n: number, byteLength: number, params: CodecParams): string | null
  /**
   * Decode one section (already checked by checkSection) into `out` (length n). Throws PayloadError
   * on non-finite or non-canonical content, so a payload is accepted or rejected as a whole.
   */
  decodeInto(section: Uint8Array, out: Float32Array, params: CodecParams): void
  /**
   * Optional: reject exactly the sections decodeInto rejects, with the same error, without
   * decoding (a delta is checked when it arrives and decoded later, by fusion). Codecs without it
   * are checked by decoding.
   */
  validate?(section: Uint8Array, n: number, params: CodecParams): void
  /**
   * Optional: decode one section piece by piece, in increasing coordinate order, so that fusion can
   * add N deltas into a small cache-resident accumulator and read sections from disk in pieces.
   * The stream must yield exactly the values decodeInto gives, bit for bit, and reject the same
   * sections (PayloadError) by the time its last value is read. Codecs without it are decoded
   * one whole tensor at a time.
   */
  openStream?(section: SectionSource, n: number, params: CodecParams): SectionStream
}

/** Where a stream reads its section from: the payload in memory, or its file (positioned reads). */
export interface SectionSource {
  readonly byteLength: number
  /**
   * `len` bytes at `offset` in the section. The view stays valid until the next read into the
   * same `slot` (0 and 1 are reused buffers; -1 gives fresh memory), and must not be written.
   */
  read(offset: number, len: number, slot: number): Uint8Array
  /** Optional: the same bytes as read(offset, len), written to dest[0, len) (no buffer of its own in between). */
  readInto?(offset: number, len: number, dest: Uint8Array): void
  /** Where the section's first byte lies in the kernel arena, when it does: the kernel then reads it in place. */
  readonly address?: number
  /** The section is in memory: read's views (of any slot) stay valid, views of the section itself. */
  readonly inMemory?: boolean
}

/**
 * A section's values in order. Each call covers the next `count` values; across all calls the
 * counts add up to the tensor's numel.
 */
export interface SectionStream {
  /** out[i] = the next `count` values (float32, as decodeInto gives them). */
  decode(out: Float32Array, count: number): void
  /** acc[i] += w * value for the next `count` values (float64; w = 1 adds the values as they are). */
  add(acc: Float64Array, count: number, w: number): void
  /** Optional: acc[i] = 0 + w * value, the same as `add` to zeros without reading acc. */
  set?(acc: Float64Array, count: number, w: number): void
  /**
   * Built-in q8 streams, for the SIMD kernel's `fuse` (wasm-q8.ts): the block size (undefined
   * without the kernel); `stage` makes the next `count` values and their scales input `slot` of
   * the kernel (pointed to where they lie in the kernel arena, or copied into the slot; always
   * copied with `copy`) and returns false if the piece holds an error, which `check` (same slot
   * and count) throws.
   */
  readonly q8Block?: number
  /**
   * Built-in f32 streams, for the kernel's `fuseF32`: true when it can be used; `stage` then makes
   * the next `count` values input `slot` (and returns true: the kernel finds non-finite values).
   */
  readonly f32Kernel?: boolean
  stage?(slot: number, count: number, copy?: boolean): boolean
  check?(slot: number, count: number): void
  /** q8 and f32 streams: move past the next `count` values without reading them (fusion split across threads). */
  skip?(count: number): void
}
