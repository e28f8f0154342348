import type { FusionRule } from './types.js'
import { fuseCoordinatewise } from './coordinate.js'

/**
 * `median`: base + the coordinate-wise median of the deltas (mean of the two middle values for
 * an even count). A minority of poisoned deltas cannot move any coordinate past the honest ones.
 */
export const medianRule: FusionRule = {
  id: 'median',
  checkParams(params) {
    const keys = Object.keys(params)
    if (keys.length > 0) throw new RangeError(`fusion rule median takes no params, got ${keys.join(', ')}`)
  },
  fuse(base, deltas, ctx) {
    return fuseCoordinatewise(base, deltas, (v) => {
      const m = v.length >> 1
      return v.length % 2 === 1 ? v[m] : (v[m - 1] + v[m]) / 2
    }, ctx)
  },
}
