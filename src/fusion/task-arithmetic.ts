import { fuseBySum } from './accumulate.js'
import { checkKeys, numberParam } from './params.js'
import type { FusionParams, FusionRule } from './types.js'

const scaleOf = (p: FusionParams): number => numberParam('task-arithmetic', p, 'scale', 0.5, 0, 10)

/**
 * `task-arithmetic` (Ilharco et al., 2023): base + scale * sum of the deltas ("task vectors").
 * params: {scale} (default 0.5). scale = 1/N is the mean; larger values extrapolate.
 */
export const taskArithmeticRule: FusionRule = {
  id: 'task-arithmetic',
  checkParams(params) {
    checkKeys('task-arithmetic', params, ['scale'])
    scaleOf(params)
  },
  fuse(base, deltas, ctx) {
    const scale = scaleOf(ctx.params)
    return fuseBySum(base, deltas, { scale, div: 1 }, ctx)
  },
}
