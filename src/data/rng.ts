import { createHash } from 'node:crypto'

/**
 * A small seeded PRNG (mulberry32): integer arithmetic only, so every machine draws the same
 * sequence. Not for cryptography.
 */
export type Rng = () => number

export function mulberry32(seed: number): Rng {
  let s = seed >>> 0
  return () => {
    s = (s + 0x6d2b79f5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** A PRNG keyed by any parts (e.g. a task name and a seed), so different keys give unrelated streams. */
export function rngFor(...parts: (string | number)[]): Rng {
  const h = createHash('sha256').update(parts.map(String).join('\u0000')).digest()
  return mulberry32(h.readUInt32LE(0))
}

export function randInt(r: Rng, n: number): number {
  return Math.floor(r() * n)
}

export function pick<T>(r: Rng, xs: readonly T[]): T {
  return xs[Math.floor(r() * xs.length)]
}

/** Fisher-Yates, in place. */
export function shuffle<T>(r: Rng, xs: T[]): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1))
    const t = xs[i]
    xs[i] = xs[j]
    xs[j] = t
  }
  return xs
}
