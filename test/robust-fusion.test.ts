import assert from 'node:assert/strict'
import { encodeDelta } from '../src/codec/index.js'
import { fuseRound, hashTensors, deltaNorm } from '../src/fusion/index.js'
import { openDelta } from '../src/codec/index.js'
import type { TensorMap } from '../src/model/tensors.js'
import { mulberry32 } from '../src/data/rng.js'
import { createSwarmDefinition } from '../src/config/genesis.js'

const rnd = mulberry32(42)
const base: TensorMap = new Map([
  ['a.weight', { shape: [8, 16], data: Float32Array.from({ length: 128 }, () => rnd() - 0.5) }],
  ['b.bias', { shape: [16], data: Float32Array.from({ length: 16 }, () => rnd() - 0.5) }],
])
const baseHash = hashTensors(base)

function delta(scale: number, seed: number) {
  const r = mulberry32(seed)
  const t: TensorMap = new Map([...base].map(([k, v]) => [k, { shape: v.shape, data: Float32Array.from(v.data, () => (r() - 0.5) * scale) }]))
  const e = encodeDelta(t, { codec: 'f32' }, { round: 1, baseHash, examples: 10 })
  return { id: e.deltaId, payload: e.payload, examples: 10 }
}

const maxAbsDiff = (a: TensorMap, b: TensorMap): number => {
  let m = 0
  for (const [k, v] of a) for (let i = 0; i < v.data.length; i++) m = Math.max(m, Math.abs(v.data[i] - b.get(k)!.data[i]))
  return m
}

describe('robust fusion rules and the norm bound', () => {
  const honest = [delta(0.01, 1), delta(0.01, 2), delta(0.01, 3)]
  const attacker = delta(1000, 99)

  for (const rule of ['median', 'trimmed-mean']) {
    it(`${rule} is deterministic under permutation`, () => {
      const all = [...honest, attacker]
      const h1 = hashTensors(fuseRound(base, all, { rule, params: rule === 'trimmed-mean' ? { trim: 0.25 } : {} }))
      const h2 = hashTensors(fuseRound(base, [...all].reverse(), { rule, params: rule === 'trimmed-mean' ? { trim: 0.25 } : {} }))
      assert.equal(h1, h2)
    })

    it(`${rule} keeps one huge delta of four from moving the base`, () => {
      const fused = fuseRound(base, [...honest, attacker], { rule, params: rule === 'trimmed-mean' ? { trim: 0.25 } : {} })
      assert.ok(maxAbsDiff(fused, base) < 0.01, `${rule} moved the base by ${maxAbsDiff(fused, base)}`)
      const mean = fuseRound(base, [...honest, attacker], { rule: 'mean' })
      assert.ok(maxAbsDiff(mean, base) > 10, 'the plain mean is wrecked, as expected')
    })
  }

  it('norm clipping bounds a delta deterministically; reject leaves it out', () => {
    const all = [...honest, attacker]
    const clipped = fuseRound(base, all, { rule: 'mean', normBound: { mode: 'clip', maxNorm: 0.5 } })
    assert.ok(maxAbsDiff(clipped, base) <= 0.5 / 4 + 1e-6)
    assert.equal(hashTensors(clipped), hashTensors(fuseRound(base, [...all].reverse(), { rule: 'mean', normBound: { mode: 'clip', maxNorm: 0.5 } })))
    const rejected = fuseRound(base, all, { rule: 'mean', normBound: { mode: 'reject', maxNorm: 0.5 } })
    assert.equal(hashTensors(rejected), hashTensors(fuseRound(base, honest, { rule: 'mean' })))
    assert.ok(deltaNorm(openDelta(attacker.payload)) > 100)
  })

  it('the swarm definition selects the rule and validates its params', () => {
    assert.equal(createSwarmDefinition({ seed: 's', fusionRule: 'trimmed-mean', trim: 0.25 }).def.fusion.params?.trim, 0.25)
    assert.throws(() => createSwarmDefinition({ seed: 's', fusionRule: 'trimmed-mean', trim: 0.7 }), /trim must be a number in \[0, 0\.5\)/)
    const d = createSwarmDefinition({ seed: 's', normBound: { mode: 'reject', maxNorm: 3 } }).def
    assert.deepEqual(d.fusion.normBound, { mode: 'reject', maxNorm: 3 })
  })
})
