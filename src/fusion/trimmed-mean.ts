import type { FusionParams, FusionRule } from './types.js'
import { fuseCoordinatewise } from './coordinate.js'

function trimOf(params: FusionParams): number {
  const t = params.trim ?? 0.2
  if (typeof t !== 'number' || !(t >= 0 && t < 0.5)) throw new RangeError('fusion rule trimmed-mean: trim must be a number in [0, 0.5)')
  return t
}

/**
 * `trimmed-mean`: per coordinate, drop the floor(trim * N) lowest and highest values, average the
 * rest (params: {trim}, default 0.2). With N = 4 and trim 0.25 one outlier per side is ignored.
 */
export const trimmedMeanRule: FusionRule = {
  id: 'trimmed-mean',
  checkParams(params) {
    for (const k of Object.keys(params)) if (k !== 'trim') throw new RangeError(`fusion rule trimmed-mean takes only trim, got ${k}`)
    trimOf(params)
  },
  fuse(base, deltas, ctx) {
    const k = Math.floor(trimOf(ctx.params) * deltas.length)
    return fuseCoordinatewise(base, deltas, (v) => {
      let s = 0
      for (let i = k; i < v.length - k; i++) s += v[i]
      return s / (v.length - 2 * k)
    }, ctx)
  },
}
