import { fuseBySum } from './accumulate.js'
import { Rng } from '../model/prng.js'
import { checkKeys, numberParam } from './params.js'
import type { FusionParams, FusionRule } from './types.js'

const dropOf = (p: FusionParams): number => numberParam('dare', p, 'drop', 0.5, 0, 1, true)
const scaleOf = (p: FusionParams): number => numberParam('dare', p, 'scale', 1, 0, 10)

/**
 * `dare` (Drop And REscale, Yu et al., 2024): each delta drops a fraction `drop` of its entries
 * at random and multiplies the rest by 1/(1 - drop); the results are averaged and scaled:
 * base + scale * mean_i(dare(delta_i)). params: {drop} (default 0.5), {scale} (default 1).
 * The random mask of a delta's tensor comes from an integer PRNG keyed by (ctx.seed, which
 * commits to the round, the base and the sorted delta ids; the delta id; the tensor name), so
 * every node drops the same entries.
 */
export const dareRule: FusionRule = {
  id: 'dare',
  checkParams(params) {
    checkKeys('dare', params, ['drop', 'scale'])
    dropOf(params)
    scaleOf(params)
  },
  fuse(base, deltas, ctx) {
    const p = dropOf(ctx.params)
    const scale = scaleOf(ctx.params)
    const threshold = Math.floor(p * 4294967296)
    const keep = 1 / (1 - p)
    const n = deltas.length
    const adder = (k: number, name: string) => {
      // One random stream per (delta, tensor), drawn once per coordinate in order, piece after piece.
      const rng = Rng.fromSeed('coldfusion-dare-v1', ctx.seed, deltas[k].id, name)
      return (acc: Float64Array, values: Float32Array, count: number) => {
        for (let i = 0; i < count; i++) if (rng.nextU32() >= threshold) acc[i] += values[i] * keep
      }
    }
    return fuseBySum(base, deltas, { scale, div: n, adder }, ctx)
  },
}
