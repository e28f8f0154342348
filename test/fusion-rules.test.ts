import assert from 'node:assert/strict'
import { encodeDelta } from '../src/codec/index.js'
import { fuseRound, fusionRuleIds, hashTensors, trimTopK } from '../src/fusion/index.js'
import type { TensorMap } from '../src/model/tensors.js'
import { parseSwarmDefinition, swarmId } from '../src/config/swarm.js'
import { createSwarmDefinition } from '../src/config/genesis.js'

const base: TensorMap = new Map([
  ['a.weight', { shape: [2, 2], data: Float32Array.from([0, 0, 0, 0]) }],
  ['b.bias', { shape: [3], data: Float32Array.from([1, 1, 1]) }],
])
const baseHash = hashTensors(base)

/** A delta with the given values per tensor, in the base's order (a.weight then b.bias). */
function delta(a: number[], b: number[], examples = 10) {
  const t: TensorMap = new Map([
    ['a.weight', { shape: [2, 2], data: Float32Array.from(a) }],
    ['b.bias', { shape: [3], data: Float32Array.from(b) }],
  ])
  const e = encodeDelta(t, { codec: 'f32' }, { round: 1, baseHash, examples })
  return { id: e.deltaId, payload: e.payload, examples }
}
const vals = (t: TensorMap, name: string): number[] => [...t.get(name)!.data]
const close = (got: number[], want: number[]) => got.forEach((g, i) => assert.ok(Math.abs(g - want[i]) < 1e-6, `${got} vs ${want}`))

describe('fusion rules beyond the mean', () => {
  const d1 = delta([1, -2, 3, 0.5], [0.1, 0.2, 0.3], 10)
  const d2 = delta([3, 2, -1, 0.5], [0.3, 0.2, 0.1], 30)

  it('weighted-mean weights deltas by their example counts', () => {
    const out = fuseRound(base, [d1, d2], { rule: 'weighted-mean' })
    close(vals(out, 'a.weight'), [0.25 * 1 + 0.75 * 3, 0.25 * -2 + 0.75 * 2, 0.25 * 3 + 0.75 * -1, 0.5])
    close(vals(out, 'b.bias'), [1 + 0.25 * 0.1 + 0.75 * 0.3, 1.2, 1 + 0.25 * 0.3 + 0.75 * 0.1])
  })

  it('task-arithmetic adds the scaled sum of the deltas', () => {
    const out = fuseRound(base, [d1, d2], { rule: 'task-arithmetic', params: { scale: 0.3 } })
    close(vals(out, 'a.weight'), [1.2, 0, 0.6, 0.3])
    // scale 1/N is the mean
    const mean = fuseRound(base, [d1, d2], { rule: 'mean' })
    const ta = fuseRound(base, [d1, d2], { rule: 'task-arithmetic', params: { scale: 0.5 } })
    close(vals(ta, 'a.weight'), vals(mean, 'a.weight'))
  })

  it('trimTopK keeps the largest magnitudes', () => {
    assert.deepEqual([...trimTopK(Float32Array.from([0.1, -5, 2, -0.3]), 0.5)], [0, -5, 2, 0])
    assert.deepEqual([...trimTopK(Float32Array.from([1, 2]), 1)], [1, 2])
  })

  it('ties trims, elects a sign by mass and averages the agreeing values', () => {
    // density 1: no trimming. Coordinate 1: -2 and 2 -> mass 0 -> 0. Coordinate 2: 3 and -1 -> +, mean of {3} = 3.
    const out = fuseRound(base, [d1, d2], { rule: 'ties', params: { density: 1, scale: 1 } })
    close(vals(out, 'a.weight'), [2, 0, 3, 0.5])
    // density 0.5 per tensor: d1 keeps {-2, 3}, d2 keeps {3, 2}; coordinate 0 keeps only d2's 3, coordinate 1's mass is 0.
    const t = fuseRound(base, [d1, d2], { rule: 'ties', params: { density: 0.5 } })
    close(vals(t, 'a.weight'), [3, 0, 3, 0])
  })

  it('dare with drop 0 is the mean; with drop p it is deterministic and keeps the expected scale', () => {
    close(vals(fuseRound(base, [d1, d2], { rule: 'dare', params: { drop: 0 } }), 'a.weight'), vals(fuseRound(base, [d1, d2]), 'a.weight'))
    const big: TensorMap = new Map([['w', { shape: [4000], data: new Float32Array(4000) }]])
    const bh = hashTensors(big)
    const mk = (s: number) => {
      const e = encodeDelta(new Map([['w', { shape: [4000], data: new Float32Array(4000).fill(1) }]]), { codec: 'f32' }, { round: 3, baseHash: bh, examples: s })
      return { id: e.deltaId, payload: e.payload, examples: s }
    }
    const ds = [mk(1), mk(2), mk(3)]
    const a = fuseRound(big, ds, { rule: 'dare', params: { drop: 0.5 } })
    const b = fuseRound(big, [...ds].reverse(), { rule: 'dare', params: { drop: 0.5 } })
    assert.equal(hashTensors(a), hashTensors(b))
    const v = a.get('w')!.data
    const mean = v.reduce((s, x) => s + x, 0) / v.length
    assert.ok(Math.abs(mean - 1) < 0.05, `mean ${mean}`) // E[keep * x] = x
    assert.ok(v.some((x) => x === 0) && v.some((x) => Math.abs(x - 2) < 1e-6), 'entries are dropped and rescaled')
    // another round (hence another FusionContext.seed) drops other entries
    const mk4 = (s: number) => {
      const e = encodeDelta(new Map([['w', { shape: [4000], data: new Float32Array(4000).fill(1) }]]), { codec: 'f32' }, { round: 4, baseHash: bh, examples: s })
      return { id: e.deltaId, payload: e.payload, examples: s }
    }
    assert.notEqual(hashTensors(fuseRound(big, [mk4(1), mk4(2), mk4(3)], { rule: 'dare', params: { drop: 0.5 } })), hashTensors(a))
  })

  it('every rule is deterministic under permutation and rejects bad params', () => {
    for (const [rule, params] of [['weighted-mean', {}], ['task-arithmetic', { scale: 1 }], ['ties', { density: 0.3 }], ['dare', { drop: 0.3 }]] as const) {
      assert.equal(hashTensors(fuseRound(base, [d1, d2], { rule, params })), hashTensors(fuseRound(base, [d2, d1], { rule, params })))
    }
    assert.throws(() => fuseRound(base, [d1], { rule: 'ties', params: { density: 2 } }), /density/)
    assert.throws(() => fuseRound(base, [d1], { rule: 'dare', params: { drop: 1 } }), /drop/)
    assert.throws(() => fuseRound(base, [d1], { rule: 'task-arithmetic', params: { k: 1 } }), /takes scale/)
  })

  it('writes the result into a recycled base (into) with the same bytes, whatever it held, for every rule and codec', () => {
    const params: Record<string, Record<string, number>> = { 'task-arithmetic': { scale: 0.5 }, ties: { density: 0.5 }, dare: { drop: 0.3 }, 'trimmed-mean': { trim: 0.2 } }
    const big: TensorMap = new Map([['a', { shape: [3000], data: Float32Array.from({ length: 3000 }, (_, i) => Math.sin(i)) }], ['b', { shape: [7], data: new Float32Array(7).fill(0.5) }]])
    const bh = hashTensors(big)
    for (const codec of [{ codec: 'f32' }, { codec: 'q8-block', blockSize: 256 }]) {
      const ds = [1, 2, 3].map((k) => {
        const t: TensorMap = new Map([...big].map(([n, v]) => [n, { shape: v.shape, data: v.data.map((_, i) => Math.cos(i * k) / 10) }]))
        const e = encodeDelta(t, codec, { round: 1, baseHash: bh, examples: 10 * k })
        return { id: e.deltaId, payload: e.payload, examples: 10 * k }
      })
      for (const rule of fusionRuleIds()) {
        const fresh = fuseRound(big, ds, { rule, params: params[rule], baseHash: bh })
        const spare: TensorMap = new Map([...big].map(([n, v]) => [n, { shape: v.shape, data: new Float32Array(v.data.length).fill(NaN) }]))
        const into = fuseRound(big, ds, { rule, params: params[rule], baseHash: bh, into: spare })
        assert.equal(hashTensors(into), hashTensors(fresh), `${rule} ${codec.codec}`)
        assert.equal(into.get('a')!.data, spare.get('a')!.data, `${rule}: the result is the spare's memory`)
      }
    }
    // A spare of another layout, or one sharing the base's memory, is refused before anything is written.
    const ds = [d1, d2]
    assert.throws(() => fuseRound(base, ds, { into: new Map([['a.weight', { shape: [2, 2], data: new Float32Array(4) }]]) }), /into has 1 tensors/)
    assert.throws(() => fuseRound(base, ds, { into: new Map([['a.weight', { shape: [4], data: new Float32Array(4) }], ['b.bias', { shape: [2], data: new Float32Array(2) }]]) }), /into lacks tensor b\.bias/)
    assert.throws(() => fuseRound(base, ds, { into: base }), /shares memory with the base/)
  })

  it('the rule and its params are part of the swarm id', () => {
    const { def } = createSwarmDefinition({ seed: 's' })
    const ties = parseSwarmDefinition({ ...def, fusion: { rule: 'ties', params: { density: 0.2 } } }, 'x')
    const ties2 = parseSwarmDefinition({ ...def, fusion: { rule: 'ties', params: { density: 0.3 } } }, 'x')
    assert.notEqual(swarmId(ties), swarmId(def))
    assert.notEqual(swarmId(ties), swarmId(ties2))
    assert.throws(() => parseSwarmDefinition({ ...def, fusion: { rule: 'dare', params: { drop: 2 } } }, 'x'), /drop/)
  })
})
