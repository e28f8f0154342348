import { createHash } from 'node:crypto'

/**
 * A seeded PRNG that gives the same stream on every platform, backend and Node version: the
 * state update is 32-bit integer arithmetic only (xoshiro128**, Math.imul), seeded from a sha256
 * of the seed parts, and floats are derived with exact operations (no Math.log/sin/exp, whose
 * last bits may differ between engines). Init of the shared base must be bit-identical across
 * nodes, so everything random in the model goes through here.
 */
export class Rng {
  private s0: number
  private s1: number
  private s2: number
  private s3: number

  private constructor(s: Uint32Array) {
    this.s0 = s[0] | 0
    this.s1 = s[1] | 0
    this.s2 = s[2] | 0
    this.s3 = s[3] | 0
    // The all-zero state is a fixed point of xoshiro; sha256 never yields it in practice.
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 0x9e3779b9 | 0
  }

  /**
   * A generator keyed by its parts, e.g. (seed, tensor name): independent streams per key, so
   * results do not depend on the order keys are used. Numbers and their decimal strings are the
   * same seed (42 and '42').
   */
  static fromSeed(...parts: (string | number)[]): Rng {
    const key = JSON.stringify(parts.map((p) => String(p)))
    const digest = createHash('sha256').update(key, 'utf8').digest()
    const s = new Uint32Array(4)
    for (let i = 0; i < 4; i++) s[i] = digest.readUInt32LE(i * 4)
    return new Rng(s)
  }

  /** Next 32-bit unsigned integer (xoshiro128**). */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9)
    const t = this.s1 << 9
    this.s2 ^= this.s0
    this.s3 ^= this.s1
    this.s1 ^= this.s2
    this.s0 ^= this.s3
    this.s2 ^= t
    this.s3 = rotl(this.s3, 11)
    return result >>> 0
  }

  /** Uniform in [0, 1) with 32 random bits; exact in float64. */
  uniform(): number {
    return this.nextU32() / 4294967296
  }

  /**
   * Approximately standard normal: an Irwin-Hall sum of 4 uniforms, centred and scaled to unit
   * variance. Only +, -, * and sqrt (correctly rounded in IEEE 754), so bit-identical everywhere.
   * Bounded to +-2*sqrt(3), which is harmless for weight init.
   */
  normalApprox(): number {
    const s = this.uniform() + this.uniform() + this.uniform() + this.uniform()
    return (s - 2) * SQRT3
  }

  /** Uniform integer in [0, n), unbiased (rejection sampling); n <= 2^32. */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > 4294967296) throw new RangeError(`Rng.int: bad bound ${n}`)
    const limit = Math.floor(4294967296 / n) * n
    for (;;) {
      const x = this.nextU32()
      if (x < limit) return x % n
    }
  }

  /** Fisher-Yates shuffle in place. */
  shuffle<T>(arr: { length: number; [i: number]: T }): void {
    for (let i = arr.length - 1; i > 0; i--) {
      const j = this.int(i + 1)
      const tmp = arr[i]
      arr[i] = arr[j]
      arr[j] = tmp
    }
  }
}

const SQRT3 = Math.sqrt(3)

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k))
}
