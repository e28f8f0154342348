import assert from 'node:assert/strict'
import { activateBackend } from '../src/model/backend.js'
import { builtinModelConfig } from '../src/model/config.js'
import { initBody } from '../src/model/init.js'
import { hashTensors } from '../src/fusion/index.js'
import { simulateRounds, trainMultitask } from '../src/experiment/central.js'
import { aggregate, renderReport, type EvalRecord, type Summary } from '../src/experiment/report.js'
import { parseRule } from '../src/experiment/runner.js'

describe('experiment (smoke)', function () {
  this.timeout(120_000)
  before(async () => activateBackend('wasm'))

  it('parses rule specs', () => {
    assert.deepEqual(parseRule('ties:density=0.2,scale=1'), { rule: 'ties', params: { density: 0.2, scale: 1 } })
    assert.deepEqual(parseRule('mean'), { rule: 'mean', params: {} })
    assert.throws(() => parseRule('dare:drop'), /k=number/)
  })

  it('aggregates seeds and renders the report and plot', () => {
    const records: EvalRecord[] = []
    for (const [arm, round, base] of [['initial', 0, 0.5], ['fused', 1, 0.6], ['fused', 2, 0.7], ['multitask', 2, 0.75], ['unseen', 2, 0.6]] as const) {
      for (const protocol of ['probe', 'few'] as const) for (const seed of [1, 2]) for (const task of ['a', 'b']) records.push({ arm, round, task, protocol, seed, accuracy: base + seed / 100, examples: 10, seconds: 1 })
    }
    const ag = aggregate(records)
    const f = ag.find((a) => a.arm === 'fused' && a.round === 2 && a.protocol === 'probe')!
    assert.ok(Math.abs(f.average.mean - 0.715) < 1e-9)
    assert.ok(Math.abs(f.average.sd - Math.SQRT1_2 / 100) < 1e-9)
    const s: Summary = {
      options: { tasks: ['a', 'b'], rounds: 2, seeds: 2 }, records, bases: { initial: { dir: '/x', hash: 'ab'.repeat(32) } },
      swarms: { all: { agreed: true, seconds: 1, dir: '/y' }, leaveOneOut: {} }, seconds: 60, files: { json: 's.json', report: 'r.md', plot: 'p.svg' },
    }
    const { markdown, svg } = renderReport(s)
    assert.match(markdown, /\| fused, round 2 \(seen\) \| 71\.5 ± 0\.7 \| 71\.5 ± 0\.7 \| 71\.5 ± 0\.7 \|/)
    assert.match(markdown, /Gain over the initial base: seen 20\.0 points/)
    assert.match(markdown, /2 tasks \(a, b\), 2 rounds, 2 eval seeds/)
    assert.match(svg, /^<svg/)
    // A run with compressed deltas says so.
    assert.match(renderReport({ ...s, options: { ...s.options, codec: { codec: 'topk-q4', densityPpm: 20000 } } }).markdown, /2 rounds, topk-q4 \(20000 per million kept\) deltas, 2 eval seeds/)
  })

  it('central multitask and in-process rounds are repeatable', async () => {
    const config = builtinModelConfig()
    const genesis = initBody(config, 'x')
    const tasks = [0, 1].map((k) => ({ name: `t${k}`, numLabels: 2, train: Array.from({ length: 16 }, (_, i) => ({ text: `w${k} ${i % 2 ? 'yes' : 'no'}`, label: i % 2 })) }))
    const t = { config, maxLen: 8, steps: 2, batchSize: 4, lr: 1e-3, seed: 's' }
    const a = await trainMultitask(t, genesis, tasks, 1, 1)
    assert.equal(a.length, 1)
    assert.equal(hashTensors(a[0]), hashTensors((await trainMultitask(t, genesis, tasks, 1, 1))[0]))
    const r = await simulateRounds(t, genesis, tasks, 1, 'ties', { density: 0.5 })
    assert.equal(hashTensors(r[0]), hashTensors((await simulateRounds(t, genesis, tasks, 1, 'ties', { density: 0.5 }))[0]))
    assert.notEqual(hashTensors(r[0]), hashTensors(genesis))
  })
})
