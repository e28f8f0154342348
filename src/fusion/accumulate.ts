import { sortedNames, type TensorMap } from '../model/tensors.js'
import type { FusionDelta } from './types.js'

/**
 * The loop of the summing rules (mean, weighted mean, task arithmetic, DARE): per tensor, add each
 * delta's values into one float64 accumulator in the given (id) order, then write
 * `finish(base value, sum)` rounded once to float32. One tensor is in flight at a time.
 * `add` may weight or mask a delta's values; by default they are added as they are.
 */
export function fuseBySum(
  base: TensorMap,
  deltas: readonly FusionDelta[],
  finish: (base: number, sum: number) => number,
  add: (acc: Float64Array, values: Float32Array, delta: FusionDelta, k: number, name: string) => void = plainAdd,
): TensorMap {
  const out: TensorMap = new Map()
  for (const name of sortedNames(base)) {
    const b = base.get(name)!
    const acc = new Float64Array(b.data.length)
    const scratch = new Float32Array(b.data.length)
    deltas.forEach((d, k) => add(acc, d.reader.read(name, scratch), d, k, name))
    const data = new Float32Array(b.data.length)
    for (let i = 0; i < data.length; i++) data[i] = finish(b.data[i], acc[i])
    out.set(name, { shape: [...b.shape], data })
  }
  return out
}

function plainAdd(acc: Float64Array, values: Float32Array): void {
  for (let i = 0; i < acc.length; i++) acc[i] += values[i]
}
