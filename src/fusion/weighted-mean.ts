import { fuseBySum } from './accumulate.js'
import type { FusionRule } from './types.js'

/**
 * `weighted-mean`: base + sum_i (n_i / sum n) * delta_i, each delta weighted by the number of
 * training examples its contributor announced (FedAvg's rule). Weights and the sum are float64,
 * deltas are read in id order, one float32 rounding per value.
 */
export const weightedMeanRule: FusionRule = {
  id: 'weighted-mean',
  checkParams(params) {
    const keys = Object.keys(params)
    if (keys.length > 0) throw new RangeError(`fusion rule weighted-mean takes no params, got ${keys.join(', ')}`)
  },
  fuse(base, deltas, ctx) {
    let total = 0
    for (const d of deltas) total += d.examples
    // All-zero counts (allowed by the codec) fall back to the plain mean.
    const weights = deltas.map((d) => (total > 0 ? d.examples / total : 1 / deltas.length))
    return fuseBySum(base, deltas, { scale: 1, div: 1, weights }, ctx)
  },
}
