import { sortedNames, type TensorMap } from '../model/tensors.js'
import { checkKeys, numberParam } from './params.js'
import type { FusionParams, FusionRule } from './types.js'

const densityOf = (p: FusionParams): number => numberParam('ties', p, 'density', 0.2, 0, 1)
const scaleOf = (p: FusionParams): number => numberParam('ties', p, 'scale', 1, 0, 10)

/**
 * `ties` (TIES-merging, Yadav et al., 2023), per tensor:
 * 1. trim: each delta keeps its ceil(density * n) largest-magnitude values (ties at the
 *    threshold are kept too, so the result does not depend on sort stability), the rest are 0;
 * 2. elect: per coordinate the sign of the sum of the trimmed values (total mass);
 * 3. disjoint mean: average of the trimmed values that are non-zero and agree with that sign;
 * 4. base + scale * that mean. params: {density} (default 0.2), {scale} (default 1).
 * Trimming is per tensor (not over the whole model), so memory stays at N copies of one tensor.
 */
export const tiesRule: FusionRule = {
  id: 'ties',
  checkParams(params) {
    checkKeys('ties', params, ['density', 'scale'])
    densityOf(params)
    scaleOf(params)
  },
  fuse(base, deltas, ctx) {
    const density = densityOf(ctx.params)
    const scale = scaleOf(ctx.params)
    const out: TensorMap = new Map()
    for (const name of sortedNames(base)) {
      const b = base.get(name)!
      const len = b.data.length
      const trimmed = deltas.map((d) => trimTopK(d.reader.read(name, new Float32Array(len)), density))
      const data = ctx.output(name, len)
      for (let i = 0; i < len; i++) {
        let mass = 0
        for (const t of trimmed) mass += t[i]
        let sum = 0
        let count = 0
        if (mass !== 0) {
          for (const t of trimmed) {
            const v = t[i]
            if (v !== 0 && v > 0 === mass > 0) {
              sum += v
              count++
            }
          }
        }
        data[i] = b.data[i] + (count > 0 ? (scale * sum) / count : 0)
      }
      out.set(name, { shape: [...b.shape], data })
    }
    return out
  },
}

/** Zero all but the k = ceil(density * n) largest |values| (in place); |v| equal to the k-th largest are kept. */
export function trimTopK(v: Float32Array, density: number): Float32Array {
  const n = v.length
  const k = Math.ceil(density * n)
  if (k >= n) return v
  if (k <= 0) return v.fill(0)
  const mags = new Float32Array(n)
  for (let i = 0; i < n; i++) mags[i] = Math.abs(v[i])
  mags.sort()
  const threshold = mags[n - k]
  for (let i = 0; i < n; i++) if (Math.abs(v[i]) < threshold) v[i] = 0
  return v
}
