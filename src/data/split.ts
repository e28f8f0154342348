import { rngFor, shuffle } from './rng.js'
import type { Example } from './load.js'

/**
 * Deterministic, stratified held-out split: within each class, a seeded shuffle picks
 * round(count * fraction) examples for eval (at least one when the class has two or more and
 * fraction > 0), so every class is represented. Both parts keep the input order.
 */
export function splitHeldOut<T extends Pick<Example, 'label'>>(examples: readonly T[], fraction: number, seed: number): { train: T[]; eval: T[] } {
  if (!(fraction >= 0 && fraction < 1)) throw new RangeError(`held-out fraction must be in [0, 1), got ${fraction}`)
  const byLabel = new Map<number, number[]>()
  examples.forEach((e, i) => {
    const list = byLabel.get(e.label)
    if (list) list.push(i)
    else byLabel.set(e.label, [i])
  })
  const held = new Set<number>()
  for (const label of [...byLabel.keys()].sort((a, b) => a - b)) {
    const idx = byLabel.get(label)!
    let k = Math.round(idx.length * fraction)
    if (fraction > 0 && k === 0 && idx.length >= 2) k = 1
    const r = rngFor('split', seed, label)
    for (const i of shuffle(r, [...idx]).slice(0, k)) held.add(i)
  }
  const train: T[] = []
  const evalSet: T[] = []
  examples.forEach((e, i) => (held.has(i) ? evalSet : train).push(e))
  return { train, eval: evalSet }
}
