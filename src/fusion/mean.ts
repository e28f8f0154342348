import { sortedNames, type TensorMap } from '../model/tensors.js'
import type { FusionRule } from './types.js'

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

  fuse(base, deltas) {
    const n = deltas.length
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
      for (let i = 0; i < data.length; i++) data[i] = b.data[i] + acc[i] / n // store rounds to float32 once
      out.set(name, { shape: [...b.shape], data })
    }
    return out
  },
}
