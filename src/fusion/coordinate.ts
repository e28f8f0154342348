import { sortedNames, type TensorMap } from '../model/tensors.js'
import { CHUNK } from './accumulate.js'
import type { FusionContext, FusionDelta } from './types.js'

/**
 * Shared loop of coordinate-wise rules (median, trimmed mean): per tensor, piece by piece
 * (`chunk` coordinates, so N pieces are held, never N tensors), hand each coordinate's N values
 * to `combine` sorted ascending, and round once to float32.
 */
export function fuseCoordinatewise(base: TensorMap, deltas: readonly FusionDelta[], combine: (sorted: Float64Array) => number, ctx: Pick<FusionContext, 'chunk' | 'output'>): TensorMap {
  const chunk = ctx.chunk ?? CHUNK
  const n = deltas.length
  const out: TensorMap = new Map()
  const cols = deltas.map(() => new Float32Array(chunk))
  const column = new Float64Array(n)
  for (const name of sortedNames(base)) {
    const b = base.get(name)!
    const len = b.data.length
    const streams = deltas.map((d) => d.reader.stream(name))
    const data = ctx.output(name, len)
    for (let start = 0; start < len; start += chunk) {
      const count = Math.min(chunk, len - start)
      for (let k = 0; k < n; k++) streams[k].decode(cols[k], count)
      for (let i = 0; i < count; i++) {
        for (let k = 0; k < n; k++) column[k] = cols[k][i]
        column.sort()
        data[start + i] = b.data[start + i] + combine(column)
      }
    }
    out.set(name, { shape: [...b.shape], data })
  }
  return out
}
