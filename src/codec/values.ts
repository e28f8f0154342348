import { PayloadError } from '../util/errors.js'
import { readF32LE, writeF32LE } from './le.js'
import { FLT_MAX, inScaleRange, invalidScale, isZeroScale, maxScale, MIN_NORMAL_F32, nonZeroInZeroBlock } from './scales.js'
import { F32Stream, Q1Stream, Q4Stream, Q8Stream } from './stream.js'
import type { SectionSource, SectionStream } from './types.js'

/**
 * Value formats: how a run of m float32 values becomes bytes. Dense codecs (q4-block, q1-block)
 * apply one to a whole tensor; sparse codecs (topk-*) to the values they keep. Each format is
 * exact IEEE arithmetic with one rounding per step, so encode and decode are bit-identical on
 * every machine, and decode accepts only the canonical form (one byte form per value list).
 *
 * Symmetric b-bit blockwise (q8: L = 127, q4: L = 7), per block of B values:
 *   scale = Math.fround(max|v| / L), 0 if below 2^-126, at most the largest s with L*s finite
 *   q = clamp(Math.round(v / scale), -L, L), decoded = Math.fround(q * scale)
 *   bytes: ceil(m/B) float32 LE scales, then the q (int8, or 4-bit two's complement nibbles,
 *   value i in the low nibble of byte i/2 when i is even; -8 is never written).
 * Sign with scale (q1), per block: scale = Math.fround(mean |v|) (the L2-optimal scale for
 * signs), 0 if below 2^-126; decoded = -scale if v < 0 else +scale; bytes: scales, then one bit
 * per value (1 = negative, value i at bit i%8 of byte i/8). A zero-scale block has all bits 0.
 * Error feedback (feedback.ts) carries what any of these lose into the next round.
 */
export interface ValueFormat {
  readonly name: 'f32' | 'q8' | 'q4' | 'q1'
  /** Bytes for m values at block size B. */
  size(m: number, B: number): number
  /** Encode v into out (exactly size(v.length, B) bytes, zeroed); the decoded values go to rec. */
  encode(v: Float32Array, out: Uint8Array, rec: Float32Array, B: number): void
  /** Decode exactly size(out.length, B) bytes; throws PayloadError on a non-canonical or non-finite value. */
  decode(bytes: Uint8Array, out: Float32Array, B: number): void
}


function nonFinite(i: number, x: number): never {
  throw new RangeError(`value ${i} is ${x}: refusing to encode a non-finite delta`)
}

export const f32Values: ValueFormat = {
  name: 'f32',
  size: (m) => 4 * m,
  encode(v, out, rec) {
    for (let i = 0; i < v.length; i++) if (!Number.isFinite(v[i])) nonFinite(i, v[i])
    writeF32LE(v, out, 0)
    rec.set(v)
  },
  decode(bytes, out) {
    readF32LE(bytes, out)
    for (let i = 0; i < out.length; i++) {
      if (!Number.isFinite(out[i])) throw new PayloadError(`value ${i} is not finite (${out[i]})`, 'non-finite')
    }
  },
}

function symmetric(name: 'q8' | 'q4', levels: number): ValueFormat {
  const MAX_SCALE = maxScale(levels)
  const nibbles = name === 'q4'
  const qBytes = (m: number) => (nibbles ? Math.ceil(m / 2) : m)
  return {
    name,
    size: (m, B) => Math.ceil(m / B) * 4 + qBytes(m),
    encode(v, out, rec, B) {
      const m = v.length
      const nb = Math.ceil(m / B)
      const dv = new DataView(out.buffer, out.byteOffset, out.byteLength)
      const q0 = nb * 4
      for (let b = 0; b < nb; b++) {
        const lo = b * B
        const hi = Math.min(m, lo + B)
        let maxabs = 0
        for (let i = lo; i < hi; i++) {
          const a = Math.abs(v[i])
          // `!(a <= maxabs)` also catches NaN.
          if (!(a <= maxabs)) {
            if (!Number.isFinite(a)) nonFinite(i, v[i])
            maxabs = a
          }
        }
        let scale = Math.fround(maxabs / levels)
        if (scale < MIN_NORMAL_F32) scale = 0
        else if (scale > MAX_SCALE) scale = MAX_SCALE
        dv.setFloat32(b * 4, scale, true)
        if (scale === 0) continue // q and rec stay 0
        for (let i = lo; i < hi; i++) {
          let k = Math.round(v[i] / scale)
          if (k > levels) k = levels
          else if (k < -levels) k = -levels
          k |= 0 // Math.round may give -0; the stored integer cannot
          if (nibbles) out[q0 + (i >> 1)] |= (k & 0xf) << ((i & 1) * 4)
          else out[q0 + i] = k & 0xff
          rec[i] = k * scale
        }
      }
    },
    decode(bytes, out, B) {
      const m = out.length
      const nb = Math.ceil(m / B)
      const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
      const q0 = nb * 4
      if (nibbles && m % 2 === 1 && bytes[q0 + (m >> 1)] >> 4 !== 0) throw new PayloadError('the unused last nibble is not 0', 'non-canonical')
      for (let b = 0; b < nb; b++) {
        const scale = dv.getFloat32(b * 4, true)
        const lo = b * B
        const hi = Math.min(m, lo + B)
        const zero = isZeroScale(scale)
        if (!zero && !inScaleRange(scale, MAX_SCALE)) throw invalidScale(b, scale, `FLT_MAX/${levels}`)
        for (let i = lo; i < hi; i++) {
          let k: number
          if (nibbles) {
            k = (bytes[q0 + (i >> 1)] >> ((i & 1) * 4)) & 0xf
            if (k >= 8) k -= 16
          } else {
            k = (bytes[q0 + i] << 24) >> 24
          }
          if (k < -levels) throw new PayloadError(`value ${i} is ${k} (${name} uses [-${levels}, ${levels}])`, 'non-canonical')
          if (zero && k !== 0) throw nonZeroInZeroBlock(b)
          out[i] = k * scale
        }
      }
    },
  }
}

export const q8Values = symmetric('q8', 127)
export const q4Values = symmetric('q4', 7)

export const q1Values: ValueFormat = {
  name: 'q1',
  size: (m, B) => Math.ceil(m / B) * 4 + Math.ceil(m / 8),
  encode(v, out, rec, B) {
    const m = v.length
    const nb = Math.ceil(m / B)
    const dv = new DataView(out.buffer, out.byteOffset, out.byteLength)
    const s0 = nb * 4
    for (let b = 0; b < nb; b++) {
      const lo = b * B
      const hi = Math.min(m, lo + B)
      let sum = 0
      for (let i = lo; i < hi; i++) {
        const a = Math.abs(v[i])
        if (!Number.isFinite(a)) nonFinite(i, v[i])
        sum += a
      }
      let scale = Math.fround(sum / (hi - lo))
      if (scale < MIN_NORMAL_F32) scale = 0
      dv.setFloat32(b * 4, scale, true)
      if (scale === 0) continue // bits and rec stay 0
      for (let i = lo; i < hi; i++) {
        if (v[i] < 0) {
          out[s0 + (i >> 3)] |= 1 << (i & 7)
          rec[i] = -scale
        } else {
          rec[i] = scale
        }
      }
    }
  },
  decode(bytes, out, B) {
    const m = out.length
    const nb = Math.ceil(m / B)
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    const s0 = nb * 4
    if (m % 8 !== 0 && bytes[s0 + (m >> 3)] >> (m & 7) !== 0) throw new PayloadError('the unused last bits are not 0', 'non-canonical')
    for (let b = 0; b < nb; b++) {
      const scale = dv.getFloat32(b * 4, true)
      const lo = b * B
      const hi = Math.min(m, lo + B)
      const zero = isZeroScale(scale)
      if (!zero && !inScaleRange(scale, FLT_MAX)) throw invalidScale(b, scale, 'FLT_MAX')
      for (let i = lo; i < hi; i++) {
        const neg = (bytes[s0 + (i >> 3)] >> (i & 7)) & 1
        if (zero && neg) throw nonZeroInZeroBlock(b, 'a sign bit set')
        out[i] = neg ? -scale : scale
      }
    }
  },
}

export const VALUE_FORMATS = { f32: f32Values, q8: q8Values, q4: q4Values, q1: q1Values } as const

const MAX_SCALE_Q8 = maxScale(127)
const MAX_SCALE_Q4 = maxScale(7)

/** A stream over m values of `format` (exactly format.size(m, B) bytes of `src`): the same values and checks as format.decode. */
export function valueStream(format: ValueFormat['name'], src: SectionSource, m: number, B: number): SectionStream {
  switch (format) {
    case 'f32':
      return new F32Stream(src)
    case 'q8':
      return new Q8Stream(src, m, B, MAX_SCALE_Q8)
    case 'q4':
      return new Q4Stream(src, m, B, MAX_SCALE_Q4)
    case 'q1':
      return new Q1Stream(src, m, B)
  }
}
