import { PayloadError } from '../util/errors.js'
import type { SectionSource, SectionStream } from './types.js'
import { q8Kernel, type Q8Kernel } from './wasm-q8.js'
import { littleEndianHost } from './le.js'
import { kernelAddress } from './kernel-arena.js'
import { FLT_MAX, inScaleRange, invalidScale, isZeroScale, nonZeroInZeroBlock } from './scales.js'

/**
 * Section streams (Codec.openStream) of the built-in formats: the same values and the same
 * rejections as their decodeInto (values.ts, q8block.ts, f32.ts), one piece at a time. Each piece
 * reads only its own bytes (positioned reads when the section is in a file); block scales are
 * read ahead in windows, all of a tensor's at once when they fit in SCALE_WINDOW, so a file is
 * read front to back.
 */

const SCALE_WINDOW = 1 << 18

/**
 * The per-block float32 scales at the start of a blockwise section, validated as decodeInto does.
 * From a file they are copied in windows (all of a tensor's at once when they fit), so the file is
 * read front to back; in memory they are read where they lie (sections need not be 4-byte
 * aligned), and each call checks just the blocks it asks for (a helper thread fusing part of a
 * tensor checks only its part).
 */
class BlockScales {
  /** In memory: every scale of the section, where it lies. */
  private view: DataView | undefined
  /** From a file: the scales of blocks [lo, hi), copied. */
  private vals = new Float32Array(0)
  private lo = 0
  private hi = 0
  /** Blocks [from, to) are checked: the first invalid one is `bad` (Infinity if none), reported only when reached, as decodeInto would. */
  private from = 0
  private to = 0
  private bad = Infinity
  private badScale = 0
  /** Whether a checked block before `bad` has scale 0 (its values must then all be 0). */
  private zero = false

  constructor(
    private readonly src: SectionSource,
    private readonly nb: number,
    private readonly maxScale: number,
    private readonly range: string,
  ) {
    if (src.inMemory) {
      const all = src.read(0, nb * 4, 0)
      this.view = new DataView(all.buffer, all.byteOffset, all.byteLength)
      this.hi = nb
    } else if (nb <= SCALE_WINDOW) this.ensure(0, nb)
  }

  /** Make blocks [b0, b1) available and checked. */
  ensure(b0: number, b1: number): void {
    if (b0 >= this.from && b1 <= this.to) {
      // A thread fusing part of a tensor starts past its first blocks: an invalid one there is not its to report.
      if (this.bad < b0) this.scan(b0, this.to)
      return
    }
    if (!(b0 >= this.lo && b1 <= this.hi)) this.load(b0, Math.min(this.nb, Math.max(b1, b0 + SCALE_WINDOW)))
    this.scan(b0, this.view ? b1 : this.hi)
  }

  /** Copy the scales of blocks [b0, b1) (made available by ensure) to dest[0, b1 - b0); false if one of them is invalid. */
  copy(dest: Float32Array, b0: number, b1: number): boolean {
    for (let b = b0; b < b1; b++) dest[b - b0] = this.at(b)
    return this.bad >= b1
  }

  /** Whether the scales of blocks [b0, b1) (made available by ensure) are all valid. */
  valid(b1: number): boolean {
    return this.bad >= b1
  }

  /** Whether some block the last ensure checked may have scale 0 (false: none has). */
  get someZero(): boolean {
    return this.zero
  }

  /** Block b's scale (made available by ensure), unchecked. */
  at(b: number): number {
    return this.view ? this.view.getFloat32(4 * b, true) : this.vals[b - this.lo]
  }

  get(b: number): number {
    if (b >= this.bad) throw invalidScale(b, this.badScale, this.range)
    return this.at(b)
  }

  /** From the file: blocks [b0, b1) copied. */
  private load(b0: number, b1: number): void {
    const n = b1 - b0
    const bytes = this.src.read(b0 * 4, n * 4, 0)
    if (this.vals.length < n) this.vals = new Float32Array(n)
    const v = this.vals
    if (littleEndianHost) new Uint8Array(v.buffer, 0, n * 4).set(bytes)
    else {
      const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
      for (let i = 0; i < n; i++) v[i] = dv.getFloat32(i * 4, true)
    }
    this.lo = b0
    this.hi = b1
    this.from = this.to = 0
  }

  /** Checks blocks [from, to): the first invalid one, and whether one before it is 0. */
  private scan(from: number, to: number): void {
    const max = this.maxScale
    this.from = from
    this.to = to
    this.bad = Infinity
    this.zero = false
    for (let b = from; b < to; b++) {
      const s = this.at(b)
      if (inScaleRange(s, max)) continue
      if (isZeroScale(s)) {
        this.zero = true
        continue
      }
      this.bad = b
      this.badScale = s
      break
    }
  }
}

/** Adds decoded values; formats without a fused add decode into a scratch buffer first. */
abstract class DecodingStream implements SectionStream {
  private scratch = new Float32Array(0)
  abstract decode(out: Float32Array, count: number): void
  add(acc: Float64Array, count: number, w: number): void {
    if (this.scratch.length < count) this.scratch = new Float32Array(count)
    const v = this.scratch
    this.decode(v, count)
    if (w === 1) for (let i = 0; i < count; i++) acc[i] += v[i]
    else for (let i = 0; i < count; i++) acc[i] += w * v[i]
  }
}

/** Dense little-endian float32 (f32). */
export class F32Stream extends DecodingStream {
  private pos = 0
  /** Where the last staged piece starts, and its bytes (in its slot or in place). */
  private staged = 0
  private stagedBytes: Uint8Array = new Uint8Array(0)
  constructor(private readonly src: SectionSource) {
    super()
  }

  decode(out: Float32Array, count: number): void {
    const bytes = this.src.read(this.pos * 4, count * 4, 1)
    if (littleEndianHost) new Uint8Array(out.buffer, out.byteOffset, count * 4).set(bytes)
    else {
      const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
      for (let i = 0; i < count; i++) out[i] = dv.getFloat32(i * 4, true)
    }
    for (let i = 0; i < count; i++) {
      if (!Number.isFinite(out[i])) throw new PayloadError(`value ${this.pos + i} is not finite (${out[i]})`, 'non-finite')
    }
    this.pos += count
  }

  /** The kernel reads little-endian floats, as the section holds them. */
  get f32Kernel(): boolean {
    return littleEndianHost && q8Kernel() !== null
  }

  /** The next `count` values as the kernel's input `slot`, for its `fuseF32`: where they lie in the arena, or copied into the slot. */
  stage(slot: number, count: number, copy = false): boolean {
    const kernel = q8Kernel()!
    const at = kernel.arena && !copy ? this.src.address : undefined
    if (at !== undefined) {
      this.stagedBytes = this.src.read(this.pos * 4, count * 4, 1)
      kernel.point(slot, 0, at + this.pos * 4)
    } else {
      const dest = kernel.slotF32(slot)
      const bytes = new Uint8Array(dest.buffer, dest.byteOffset, count * 4)
      if (this.src.readInto) this.src.readInto(this.pos * 4, count * 4, bytes)
      else bytes.set(this.src.read(this.pos * 4, count * 4, 1))
      this.stagedBytes = bytes
      kernel.point(slot, 0, dest.byteOffset)
    }
    this.staged = this.pos
    this.pos += count
    return true
  }

  /** Throws for the first non-finite value of the piece staged as input `slot`, as `decode` would. */
  check(_slot: number, count: number): void {
    const b = this.stagedBytes
    const v = b.byteOffset % 4 === 0 ? new Float32Array(b.buffer, b.byteOffset, count) : new Float32Array(b.slice(0, count * 4).buffer)
    for (let i = 0; i < count; i++) {
      if (!Number.isFinite(v[i])) throw new PayloadError(`value ${this.staged + i} is not finite (${v[i]})`, 'non-finite')
    }
  }

  skip(count: number): void {
    this.pos += count
  }
}

/**
 * 8-bit symmetric blocks (q8-block): m values in blocks of B, float32 scales then int8 values;
 * value = Math.fround(q * scale) with q in [-127, 127]. `add` is fused: no decoded copy is
 * written (by the SIMD kernel when the accumulator lives in its memory).
 */
export class Q8Stream implements SectionStream {
  private pos = 0
  /** Where the last staged piece starts, and its values (in its slot or in place). */
  private staged = 0
  private stagedQ: Uint8Array = new Uint8Array(0)
  private readonly scales: BlockScales
  private readonly q0: number

  constructor(private readonly src: SectionSource, m: number, private readonly B: number, maxScale: number) {
    const nb = Math.ceil(m / B)
    this.q0 = nb * 4
    this.scales = new BlockScales(src, nb, maxScale, 'FLT_MAX/127')
  }

  private values(count: number): Int8Array {
    const bytes = this.src.read(this.q0 + this.pos, count, 1)
    this.scales.ensure(Math.floor(this.pos / this.B), Math.floor((this.pos + count - 1) / this.B) + 1)
    return new Int8Array(bytes.buffer, bytes.byteOffset, count)
  }

  private static minus128(i: number): never {
    throw new PayloadError(`value ${i} is -128 (q8 uses [-127, 127])`, 'non-canonical')
  }

  decode(out: Float32Array, count: number): void {
    if (count === 0) return
    const q = this.values(count)
    const g0 = this.pos
    const B = this.B
    for (let i = 0; i < count; ) {
      const b = Math.floor((g0 + i) / B)
      const end = Math.min(count, (b + 1) * B - g0)
      const s = this.scales.get(b)
      if (s === 0) {
        for (let j = i; j < end; j++) if (q[j] !== 0) throw nonZeroInZeroBlock(b)
        out.fill(0, i, end)
      } else {
        for (let j = i; j < end; j++) {
          const k = q[j]
          if (k === -128) Q8Stream.minus128(g0 + j)
          out[j] = k * s
        }
      }
      i = end
    }
    this.pos += count
  }

  set(acc: Float64Array, count: number, w: number): void {
    const kernel = q8Kernel()
    if (count > 0 && kernel && kernel.holds(acc)) return this.addSimd(kernel, acc, count, w, true)
    acc.fill(0, 0, count)
    this.add(acc, count, w)
  }

  add(acc: Float64Array, count: number, w: number): void {
    if (count === 0) return
    const kernel = q8Kernel()
    if (kernel && kernel.holds(acc)) return this.addSimd(kernel, acc, count, w, false)
    const q = this.values(count)
    const g0 = this.pos
    const B = this.B
    for (let i = 0; i < count; ) {
      const b = Math.floor((g0 + i) / B)
      const end = Math.min(count, (b + 1) * B - g0)
      const s = this.scales.get(b)
      // A zero block adds +0, which leaves a float64 sum unchanged (the sum starts at +0, so it is never -0).
      if (s === 0) {
        for (let j = i; j < end; j++) if (q[j] !== 0) throw nonZeroInZeroBlock(b)
      } else if (w === 1) {
        for (let j = i; j < end; j++) {
          const k = q[j]
          if (k === -128) Q8Stream.minus128(g0 + j)
          acc[j] += Math.fround(k * s)
        }
      } else {
        for (let j = i; j < end; j++) {
          const k = q[j]
          if (k === -128) Q8Stream.minus128(g0 + j)
          acc[j] += w * Math.fround(k * s)
        }
      }
      i = end
    }
    this.pos += count
  }

  get q8Block(): number | undefined {
    return q8Kernel() ? this.B : undefined
  }

  skip(count: number): void {
    this.pos += count
  }

  /**
   * The next `count` values and their block scales as the kernel's input `slot`, for its `fuse`:
   * where they lie in the arena, or copied into the slot (always with `copy`). False if the piece
   * holds an error, which `check(slot, count)` then throws.
   */
  stage(slot: number, count: number, copy = false): boolean {
    const kernel = q8Kernel()!
    const g0 = this.pos
    const B = this.B
    const at = kernel.arena && !copy ? this.src.address : undefined
    const b0 = Math.floor(g0 / B)
    let q: Uint8Array
    if (at !== undefined) {
      q = this.src.read(this.q0 + g0, count, 1)
      kernel.point(slot, at + 4 * b0, at + this.q0 + g0)
    } else {
      q = kernel.slotQ(slot)
      if (this.src.readInto) this.src.readInto(this.q0 + g0, count, q)
      else q.set(this.src.read(this.q0 + g0, count, 1))
      kernel.pointSlot(slot)
    }
    this.stagedQ = q
    this.staged = g0
    this.pos += count
    if (count === 0) return true
    const b1 = Math.floor((g0 + count - 1) / B) + 1
    this.scales.ensure(b0, b1)
    let ok: boolean
    if (at !== undefined) ok = this.scales.valid(b1)
    else ok = this.scales.copy(kernel.slotScales(slot), b0, b1)
    // A zero block must hold only zeros; the kernel adds them (+0 or -0 leave the sum as it is).
    for (let b = b0; ok && this.scales.someZero && b < b1; b++) {
      if (this.scales.at(b) !== 0) continue
      const end = Math.min(count, (b + 1) * B - g0)
      for (let j = Math.max(0, b * B - g0); j < end; j++) if (q[j] !== 0) ok = false
    }
    return ok
  }

  /** Throws the first error of the piece staged as input `slot`, in the JS loop's order; returns if there is none. */
  check(_slot: number, count: number): void {
    const q = this.stagedQ
    const g0 = this.staged
    const B = this.B
    for (let i = 0; i < count; ) {
      const b = Math.floor((g0 + i) / B)
      const end = Math.min(count, (b + 1) * B - g0)
      const s = this.scales.get(b)
      for (let j = i; j < end; j++) {
        if (s === 0 && q[j] !== 0) throw nonZeroInZeroBlock(b)
        if (q[j] === 0x80) Q8Stream.minus128(g0 + j)
      }
      i = end
    }
  }

  /** The same sums as `add`, by the SIMD kernel, when `acc` lives in the kernel's memory. */
  private addSimd(kernel: Q8Kernel, acc: Float64Array, count: number, w: number, set: boolean): void {
    // `sum` reads slot 0 itself.
    const ok = this.stage(0, count, true)
    const off = this.staged - Math.floor(this.staged / this.B) * this.B
    if (!ok || kernel.sum(count, acc, off, this.B, w, set) !== 0) {
      this.check(0, count)
      throw new Error('q8 kernel: a piece was flagged but holds no error')
    }
  }
}

/** 4-bit symmetric blocks (q4-block): scales, then two's complement nibbles in [-7, 7]. */
export class Q4Stream extends DecodingStream {
  private pos = 0
  private readonly scales: BlockScales
  private readonly q0: number

  constructor(private readonly src: SectionSource, private readonly m: number, private readonly B: number, maxScale: number) {
    super()
    const nb = Math.ceil(m / B)
    this.q0 = nb * 4
    this.scales = new BlockScales(src, nb, maxScale, 'FLT_MAX/7')
  }

  decode(out: Float32Array, count: number): void {
    if (count === 0) return
    const g0 = this.pos
    const lo = g0 >> 1
    const bytes = this.src.read(this.q0 + lo, ((g0 + count + 1) >> 1) - lo, 1)
    const B = this.B
    this.scales.ensure(Math.floor(g0 / B), Math.floor((g0 + count - 1) / B) + 1)
    for (let i = 0; i < count; ) {
      const b = Math.floor((g0 + i) / B)
      const end = Math.min(count, (b + 1) * B - g0)
      const s = this.scales.get(b)
      const zero = s === 0
      for (let j = i; j < end; j++) {
        const g = g0 + j
        let k = (bytes[(g >> 1) - lo] >> ((g & 1) * 4)) & 0xf
        if (k >= 8) k -= 16
        if (k < -7) throw new PayloadError(`value ${g} is ${k} (q4 uses [-7, 7])`, 'non-canonical')
        if (zero && k !== 0) throw nonZeroInZeroBlock(b)
        out[j] = k * s
      }
      i = end
    }
    this.pos += count
    if (this.pos === this.m && this.m % 2 === 1 && bytes[bytes.length - 1] >> 4 !== 0) throw new PayloadError('the unused last nibble is not 0', 'non-canonical')
  }
}

/** Sign blocks (q1-block): scales, then one bit per value (1 = negative). */
export class Q1Stream extends DecodingStream {
  private pos = 0
  private readonly scales: BlockScales
  private readonly s0: number

  constructor(private readonly src: SectionSource, private readonly m: number, private readonly B: number) {
    super()
    const nb = Math.ceil(m / B)
    this.s0 = nb * 4
    this.scales = new BlockScales(src, nb, FLT_MAX, 'FLT_MAX')
  }

  decode(out: Float32Array, count: number): void {
    if (count === 0) return
    const g0 = this.pos
    const lo = g0 >> 3
    const bytes = this.src.read(this.s0 + lo, ((g0 + count + 7) >> 3) - lo, 1)
    const B = this.B
    this.scales.ensure(Math.floor(g0 / B), Math.floor((g0 + count - 1) / B) + 1)
    for (let i = 0; i < count; ) {
      const b = Math.floor((g0 + i) / B)
      const end = Math.min(count, (b + 1) * B - g0)
      const s = this.scales.get(b)
      const zero = s === 0
      for (let j = i; j < end; j++) {
        const g = g0 + j
        const neg = (bytes[(g >> 3) - lo] >> (g & 7)) & 1
        if (zero && neg) throw nonZeroInZeroBlock(b, 'a sign bit set')
        out[j] = neg ? -s : s
      }
      i = end
    }
    this.pos += count
    const m = this.m
    if (this.pos === m && m % 8 !== 0 && bytes[bytes.length - 1] >> (m & 7) !== 0) throw new PayloadError('the unused last bits are not 0', 'non-canonical')
  }
}

/** Values already decoded (a codec without a stream of its own, or a sparse section's scatter). */
export class ArrayStream extends DecodingStream {
  private pos = 0
  constructor(private readonly values: Float32Array) {
    super()
  }

  decode(out: Float32Array, count: number): void {
    out.set(this.values.subarray(this.pos, this.pos + count))
    this.pos += count
  }
}

/**
 * A sparse tensor: ascending positions `idx` and their values. Positions not listed are 0, which
 * `add` skips: adding +0 leaves a float64 sum that started at +0 unchanged.
 */
export class SparseStream implements SectionStream {
  private pos = 0
  private j = 0
  constructor(private readonly idx: Int32Array, private readonly kept: Float32Array) {}

  decode(out: Float32Array, count: number): void {
    out.fill(0, 0, count)
    const end = this.pos + count
    const { idx, kept } = this
    let j = this.j
    for (; j < idx.length && idx[j] < end; j++) out[idx[j] - this.pos] = kept[j]
    this.j = j
    this.pos = end
  }

  add(acc: Float64Array, count: number, w: number): void {
    const end = this.pos + count
    const { idx, kept } = this
    let j = this.j
    for (; j < idx.length && idx[j] < end; j++) acc[idx[j] - this.pos] += w * kept[j]
    this.j = j
    this.pos = end
  }
}

/** Refuse a read of `l` bytes at `o` that leaves a section of `len` bytes. */
function inSection(o: number, l: number, len: number): void {
  if (o < 0 || l < 0 || o + l > len) throw new PayloadError(`read of ${l} bytes at ${o} runs past the section (${len} bytes)`, 'truncated')
}

/** A view of `len` bytes of `src` starting at `offset`, for a stream over part of a section. */
export function subSource(src: SectionSource, offset: number, len: number): SectionSource {
  return {
    byteLength: len,
    address: src.address === undefined ? undefined : src.address + offset,
    inMemory: src.inMemory,
    read(o, l, slot) {
      inSection(o, l, len)
      return src.read(offset + o, l, slot)
    },
    readInto: src.readInto
      ? (o, l, dest) => {
          inSection(o, l, len)
          src.readInto!(offset + o, l, dest)
        }
      : undefined,
  }
}

/** A section held in memory. */
export function memorySource(bytes: Uint8Array): SectionSource {
  // Buffer.copy is a plain memmove; TypedArray.set from shared memory (a payload fusion helpers
  // read too) at an unaligned offset is about 3 times slower.
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length)
  return {
    byteLength: bytes.length,
    address: kernelAddress(bytes),
    inMemory: true,
    read(o, l) {
      inSection(o, l, bytes.length)
      return bytes.subarray(o, o + l)
    },
    readInto(o, l, dest) {
      inSection(o, l, bytes.length)
      buf.copy(dest, 0, o, o + l)
    },
  }
}
