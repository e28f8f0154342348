import { sortedNames, type TensorMap } from '../model/tensors.js'
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
    const out: TensorMap = new Map()
    for (const name of sortedNames(base)) {
      const b = base.get(name)!
      const acc = new Float64Array(b.data.length)
      const scratch = new Float32Array(b.data.length)
      for (const d of deltas) {
        d.reader.read(name, scratch)
        for (let i = 0; i < acc.length; i++) acc[i] += scratch[i]
      }
      const data = new Float32Array(b.data.length)
      for (let i = 0; i < data.length; i++) data[i] = b.data[i] + scale * acc[i]
      out.set(name, { shape: [...b.shape], data })
    }
    return out
  },
}
