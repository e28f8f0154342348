import { sortedNames, type TensorMap } from '../model/tensors.js'
import type { FusionDelta } from './types.js'

/**
 * Shared loop of coordinate-wise rules (median, trimmed mean): for each tensor, read the N deltas'
 * values of that tensor only (N copies of one tensor at most, never of the model), hand each
 * coordinate's N values to `combine` sorted ascending, and round once to float32.
 */
export function fuseCoordinatewise(base: TensorMap, deltas: readonly FusionDelta[], combine: (sorted: Float64Array) => number): TensorMap {
  const n = deltas.length
  const out: TensorMap = new Map()
  for (const name of sortedNames(base)) {
    const b = base.get(name)!
    const len = b.data.length
    const cols = deltas.map((d) => d.reader.read(name, new Float32Array(len)))
    const column = new Float64Array(n)
    const data = new Float32Array(len)
    for (let i = 0; i < len; i++) {
      for (let k = 0; k < n; k++) column[k] = cols[k][i]
      column.sort()
      data[i] = b.data[i] + combine(column)
    }
    out.set(name, { shape: [...b.shape], data })
  }
  return out
}
