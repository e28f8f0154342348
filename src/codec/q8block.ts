import { PayloadError } from '../util/errors.js'
import type { TensorMap } from '../model/tensors.js'
import type { Codec, CodecParams, CodecSettings, EncodedSections } from './types.js'
import { Q8Stream } from './stream.js'
import { inScaleRange, invalidScale, isZeroScale, maxScale, MIN_NORMAL_F32, nonZeroInZeroBlock } from './scales.js'

/**
 * `q8-block`: blockwise symmetric 8-bit quantization (as in hivemind's blockwise codecs).
 *
 * Each tensor is cut into blocks of B values (the last may be shorter). Per block:
 *   maxabs = max |v|                      (v are the float32 inputs)
 *   scale  = Math.fround(maxabs / 127)    (division in float64, rounded once to float32)
 *   scale  = 0 if scale < 2^-126          (zero block, or a block so tiny its scale would be subnormal)
 *   scale  = min(scale, MAX_SCALE)        (only near FLT_MAX: keeps 127 * scale finite)
 *   q      = clamp(Math.round(v / scale), -127, 127)   (v / scale in float64; Math.round = half up)
 *   decoded = Math.fround(q * scale)      (q * scale is exact in float64; one rounding)
 * Every step is a correctly rounded IEEE operation, so encode and decode are bit-identical on
 * every machine. Error bound per element (non-zero block):
 *   |v - decoded| <= scale/2 + |decoded| * 2^-24  <=  scale/2 + maxabs * 2^-23
 * (the second term is the final float32 rounding). For a flushed block |v - decoded| = |v| < 127 * 2^-126.
 *
 * Section layout: ceil(n/B) float32 LE scales, then n int8 values. Size n + 4*ceil(n/B) bytes:
 * about 3.94x smaller than dense float32 at B = 256.
 * Canonical form is enforced on decode: q in [-127, 127], a zero scale only with all q = 0, scales
 * finite, normal and with 127 * scale finite in float32.
 */

export const DEFAULT_BLOCK_SIZE = 256
export const MAX_BLOCK_SIZE = 1 << 20
/** Largest float32 scale whose 127 * scale is still finite in float32. */
const MAX_SCALE = maxScale(127)

/**
 * Block b's scale as decoding may use it: 0 for a zero block (whose values must all be 0, which
 * is checked here), else a normal float32 with 127 * scale finite; anything else is rejected.
 * decodeInto and validate both check a block through this, so they reject alike.
 */
function blockScale(dv: DataView, q: Int8Array, b: number, lo: number, hi: number): number {
  const scale = dv.getFloat32(b * 4, true)
  if (isZeroScale(scale)) {
    for (let i = lo; i < hi; i++) if (q[i] !== 0) throw nonZeroInZeroBlock(b)
    return 0
  }
  if (!inScaleRange(scale, MAX_SCALE)) throw invalidScale(b, scale, 'FLT_MAX/127')
  return scale
}

function minus128(i: number): PayloadError {
  return new PayloadError(`value ${i} is -128 (q8-block uses [-127, 127])`, 'non-canonical')
}

function checkBlockSize(b: unknown): b is number {
  return typeof b === 'number' && Number.isInteger(b) && b >= 1 && b <= MAX_BLOCK_SIZE
}

export const q8BlockCodec: Codec = {
  id: 'q8-block',

  paramsFromSettings(settings: CodecSettings): CodecParams {
    const blockSize = settings.blockSize ?? DEFAULT_BLOCK_SIZE
    if (!checkBlockSize(blockSize)) throw new RangeError(`q8-block: blockSize must be an integer in [1, ${MAX_BLOCK_SIZE}], got ${blockSize}`)
    return { blockSize }
  },

  checkParams(raw): CodecParams {
    const keys = Object.keys(raw)
    if (keys.length !== 1 || keys[0] !== 'blockSize') throw new PayloadError(`codec q8-block takes exactly {blockSize}, got {${keys.join(', ')}}`, 'malformed')
    if (!checkBlockSize(raw.blockSize)) throw new PayloadError(`codec q8-block: blockSize ${String(raw.blockSize)} is not an integer in [1, ${MAX_BLOCK_SIZE}]`, 'malformed')
    return { blockSize: raw.blockSize }
  },

  encode(delta: TensorMap, names: readonly string[], params: CodecParams): EncodedSections {
    const B = params.blockSize
    const sections: Uint8Array[] = []
    const reconstruction: TensorMap = new Map()
    for (const name of names) {
      const t = delta.get(name)!
      const v = t.data
      const n = v.length
      const nb = Math.ceil(n / B)
      const bytes = new Uint8Array(nb * 4 + n)
      const dv = new DataView(bytes.buffer)
      const q = new Int8Array(bytes.buffer, nb * 4, n)
      const rec = new Float32Array(n)
      for (let b = 0; b < nb; b++) {
        const lo = b * B
        const hi = Math.min(n, lo + B)
        let maxabs = 0
        for (let i = lo; i < hi; i++) {
          const a = Math.abs(v[i])
          // `!(a <= maxabs)` also catches NaN.
          if (!(a <= maxabs)) {
            if (!Number.isFinite(a)) throw new RangeError(`delta tensor ${name}[${i}] is ${v[i]}: refusing to encode a non-finite delta`)
            maxabs = a
          }
        }
        let scale = Math.fround(maxabs / 127)
        if (scale < MIN_NORMAL_F32) scale = 0
        // Only for |v| within a hair of FLT_MAX: keep 127 * scale finite (q clamps to 127).
        else if (scale > MAX_SCALE) scale = MAX_SCALE
        dv.setFloat32(b * 4, scale, true)
        if (scale === 0) continue // q and rec already 0
        for (let i = lo; i < hi; i++) {
          let k = Math.round(v[i] / scale)
          if (k > 127) k = 127
          else if (k < -127) k = -127
          q[i] = k
          // From the stored int8, as decode does (Math.round may give -0; the int8 cannot).
          rec[i] = q[i] * scale // Float32Array store = Math.fround
        }
      }
      sections.push(bytes)
      reconstruction.set(name, { shape: [...t.shape], data: rec })
    }
    return { sections, reconstruction }
  },

  checkSection(n, byteLength, params) {
    const need = Math.ceil(n / params.blockSize) * 4 + n
    return byteLength === need ? null : `${byteLength} bytes cannot hold ${n} q8-block values (need ${need})`
  },

  decodeInto(section, out, params) {
    const B = params.blockSize
    const n = out.length
    const nb = Math.ceil(n / B)
    const dv = new DataView(section.buffer, section.byteOffset, section.byteLength)
    const q = new Int8Array(section.buffer, section.byteOffset + nb * 4, n)
    for (let b = 0; b < nb; b++) {
      const lo = b * B
      const hi = Math.min(n, lo + B)
      const scale = blockScale(dv, q, b, lo, hi)
      if (scale === 0) {
        out.fill(0, lo, hi)
        continue
      }
      for (let i = lo; i < hi; i++) {
        const k = q[i]
        if (k === -128) throw minus128(i)
        out[i] = k * scale
      }
    }
  },

  validate(section, n, params) {
    const B = params.blockSize
    const nb = Math.ceil(n / B)
    const dv = new DataView(section.buffer, section.byteOffset, section.byteLength)
    const q = new Int8Array(section.buffer, section.byteOffset + nb * 4, n)
    // The first -128 (byte 0x80), found by memchr; decodeInto meets it in its block, after that
    // block's scale check, so it is reported in that order.
    const bad = Buffer.from(section.buffer, section.byteOffset + nb * 4, n).indexOf(0x80)
    for (let b = 0; b < nb; b++) {
      const lo = b * B
      const hi = Math.min(n, lo + B)
      if (blockScale(dv, q, b, lo, hi) !== 0 && bad >= lo && bad < hi) throw minus128(bad)
    }
  },

  openStream: (section, n, params) => new Q8Stream(section, n, params.blockSize, MAX_SCALE),
}
