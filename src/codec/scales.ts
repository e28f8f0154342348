import { PayloadError } from '../util/errors.js'

/**
 * The rule every blockwise format (q8-block, the 4- and 1-bit ones, and their section streams)
 * applies to a block's float32 scale, written once so that decoders and streams reject alike: a
 * scale is +0 (a zero block, whose values must all be 0) or a normal float32 no larger than the
 * format's maximum (levels * scale finite in float32); -0, subnormals, NaN and infinities are not.
 */

export const MIN_NORMAL_F32 = 2 ** -126
export const FLT_MAX = 3.4028234663852886e38

/** Largest float32 s with Math.fround(levels * s) finite. */
export function maxScale(levels: number): number {
  const f = new Float32Array([FLT_MAX / levels])
  const u = new Uint32Array(f.buffer)
  while (!Number.isFinite(Math.fround(levels * f[0]))) u[0]--
  return f[0]
}

/** +0: a zero block (-0 is not canonical). */
export function isZeroScale(s: number): boolean {
  return s === 0 && !Object.is(s, -0)
}

/** A non-zero scale decoding may use. */
export function inScaleRange(s: number, max: number): boolean {
  return s >= MIN_NORMAL_F32 && s <= max
}

/** The error for block b's invalid scale s; `range` names the maximum (e.g. 'FLT_MAX/127'). */
export function invalidScale(b: number, s: number, range: string): PayloadError {
  return new PayloadError(`block ${b} has an invalid scale ${s} (must be 0 or in [2^-126, ${range}])`, Number.isFinite(s) ? 'malformed' : 'non-finite')
}

/** The error for a value (`what`: 'a non-zero value', 'a sign bit set') in block b, whose scale is 0. */
export function nonZeroInZeroBlock(b: number, what = 'a non-zero value'): PayloadError {
  return new PayloadError(`block ${b} has scale 0 but ${what}`, 'non-canonical')
}
