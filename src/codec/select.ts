/**
 * Exact global top-k by magnitude across several arrays, in O(total) time and fixed memory: a
 * two-pass radix select on the float32 bit patterns (for non-negative floats the bit pattern
 * orders like the value), instead of a sort. Ties are broken by position (array order, then
 * index), so the selection is one deterministic set on every machine.
 *
 * Result: keep every value whose |v| bits exceed `threshold`, plus the first `ties` values (in
 * order) whose |v| bits equal it. Exact zeros are never kept.
 */
export interface TopK {
  threshold: number
  ties: number
  /** How many values that keeps (min(k, non-zero count)). */
  kept: number
}

const ABS = 0x7fffffff
const INF_BITS = 0x7f800000

function bitsOf(a: Float32Array): Uint32Array {
  return new Uint32Array(a.buffer, a.byteOffset, a.length)
}

/** Throws RangeError naming the array index and position of the first non-finite value. */
export function topKThreshold(arrays: readonly Float32Array[], k: number): TopK {
  const hi = new Float64Array(INF_BITS >>> 16)
  let nonZero = 0
  arrays.forEach((a, j) => {
    const u = bitsOf(a)
    for (let i = 0; i < u.length; i++) {
      const x = u[i] & ABS
      if (x === 0) continue
      if (x >= INF_BITS) throw new RangeError(`array ${j} value ${i} is ${a[i]}: refusing to encode a non-finite delta`)
      hi[x >>> 16]++
      nonZero++
    }
  })
  if (k <= 0) return { threshold: ABS, ties: 0, kept: 0 }
  if (k >= nonZero) return { threshold: 0, ties: 0, kept: nonZero }
  // Pass 1: the high 16 bits of the k-th largest.
  let above = 0
  let bucket = hi.length - 1
  while (above + hi[bucket] < k) above += hi[bucket--]
  // Pass 2: its low 16 bits, among the values of that bucket.
  const lo = new Float64Array(65536)
  for (const a of arrays) {
    const u = bitsOf(a)
    for (let i = 0; i < u.length; i++) {
      const x = u[i] & ABS
      if (x >>> 16 === bucket) lo[x & 0xffff]++
    }
  }
  let low = 0xffff
  while (above + lo[low] < k) above += lo[low--]
  return { threshold: bucket * 65536 + low, ties: k - above, kept: k }
}

/** Applies a TopK to one array after another (in the order used to compute it). */
export class TopKCursor {
  private ties: number
  constructor(private readonly t: TopK) {
    this.ties = t.ties
  }

  /** Indices kept in `a`, ascending. */
  indices(a: Float32Array): Int32Array {
    const u = bitsOf(a)
    const T = this.t.threshold
    let count = 0
    const out = new Int32Array(Math.min(a.length, this.t.kept))
    for (let i = 0; i < u.length; i++) {
      const x = u[i] & ABS
      if (x > T || (x === T && x !== 0 && this.ties > 0 && this.ties--)) out[count++] = i
    }
    return out.subarray(0, count)
  }
}
