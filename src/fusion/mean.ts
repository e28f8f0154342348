import type { FusionRule } from './types.js'
import { fuseBySum } from './accumulate.js'

/**
 * `mean`: the paper's rule, base + unweighted mean of the deltas (equivalently the mean of the
 * contributors' bodies). Per coordinate: sum in float64 over deltas in id order, then
 * new = Math.fround(base + sum / N). One tensor is in flight at a time.
 */
export const meanRule: FusionRule = {
  id: 'mean',

  checkParams(params) {
    const keys = Object.keys(params)
    if (keys.length > 0) throw new RangeError(`fusion rule mean takes no params, got ${keys.join(', ')}`)
  },

  fuse(base, deltas, ctx) {
    return fuseBySum(base, deltas, { scale: 1, div: deltas.length }, ctx)
  },
}
