import assert from 'node:assert/strict'
import { access } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { selectBackend } from '../src/model/backend.js'
import { builtinModelConfig } from '../src/model/config.js'
import { initBody, initHead } from '../src/model/init.js'
import type { TensorMap } from '../src/model/tensors.js'
import { encodeDelta } from '../src/codec/index.js'
import { fuseRound, hashTensors, deltaNorm, type FuseOptions } from '../src/fusion/index.js'
import { openDelta } from '../src/codec/index.js'
import { subtractBody } from '../src/rounds/runner.js'
import { evaluate } from '../src/train/trainer.js'
import { generateTask, TASKS, splitHeldOut } from '../src/data/index.js'
import { loadTask, REAL_TASKS, type Task } from '../src/bench/tasks.js'
import { trainNodes, type Training } from '../src/bench/central-sim.js'
import { recordRow } from './helpers/fault-report.js'

/**
 * Poisoning run (npm run test:faults): four nodes, one of which sends its honest delta flipped and
 * boosted 20 times. The fused base's accuracy (honest nodes' tasks, their own heads) under each
 * fusion rule, against the same swarm with no attacker. Real data from ../shared/data when present,
 * otherwise the project's generated tasks.
 */

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
const ROUNDS = Number(process.env.POISON_ROUNDS ?? 3)

async function tasks(): Promise<{ source: string; tasks: Task[] }> {
  const dir = resolve(ROOT, '..', 'shared', 'data')
  try {
    await access(join(dir, 'mr', 'train.jsonl'))
    return { source: 'shared/data (mr, subj, mpqa, trec)', tasks: await Promise.all(REAL_TASKS.map((t) => loadTask(dir, t, 1500, 400, 'poison'))) }
  } catch {
    return {
      source: 'generated tasks',
      tasks: TASKS.map((t, i) => {
        const { train, eval: test } = splitHeldOut(generateTask(t.name, 1500, 50 + i), 0.2, 7)
        return { name: t.name, labels: [...t.labels], train, test }
      }),
    }
  }
}

describe('poisoning: one malicious node of four', function () {
  this.timeout(1_800_000)

  it('robust rules and the norm bound keep the fused base near the honest one', async () => {
    await selectBackend({ prefer: 'wasm' })
    const { source, tasks: ts } = await tasks()
    const config = builtinModelConfig()
    const training: Training = { config, maxLen: 32, steps: 60, batchSize: 16, lr: 2e-3, seed: 'poison' }
    const genesis = initBody(config, 'poison-genesis')
    const ATTACKER = 3
    const run = async (attack: boolean, opts: FuseOptions): Promise<number> => {
      let base: TensorMap = genesis
      const heads = ts.map((t, i) => initHead(config, t.labels.length, `head${i}`))
      for (let round = 1; round <= ROUNDS; round++) {
        const trained = await trainNodes(training, base, heads, ts, round)
        const baseHash = hashTensors(base)
        const deltas = trained.map((tr, i) => {
          const d = subtractBody(tr.body, base)
          if (attack && i === ATTACKER) for (const t of d.values()) for (let k = 0; k < t.data.length; k++) t.data[k] *= -20
          const e = encodeDelta(d, { codec: 'f32' }, { round, baseHash, examples: ts[i].train.length })
          heads[i] = tr.head
          return { id: e.deltaId, payload: e.payload, examples: ts[i].train.length }
        })
        if (opts.normBound && round === 1 && opts.normBound.maxNorm === 0) {
          // The bound a swarm would configure: a little above the honest deltas' norms.
          const norms = deltas.filter((_, i) => !(attack && i === ATTACKER)).map((d) => deltaNorm(openDelta(d.payload)))
          opts.normBound.maxNorm = 1.5 * Math.max(...norms)
        }
        base = fuseRound(base, deltas, { ...opts, round, baseHash })
      }
      const honest = ts.map((_, i) => i).filter((i) => i !== ATTACKER)
      let sum = 0
      for (const i of honest) sum += (await evaluate({ config, body: base, head: heads[i], examples: ts[i].test, maxLen: 32 })).accuracy
      return sum / honest.length
    }
    const clean = await run(false, { rule: 'mean' })
    const rows: { rule: string; accuracy: number }[] = []
    for (const [name, opts] of [
      ['mean', { rule: 'mean' }],
      ['mean + norm clip', { rule: 'mean', normBound: { mode: 'clip', maxNorm: 0 } }],
      ['mean + norm reject', { rule: 'mean', normBound: { mode: 'reject', maxNorm: 0 } }],
      ['median', { rule: 'median' }],
      ['trimmed-mean (0.25)', { rule: 'trimmed-mean', params: { trim: 0.25 } }],
    ] as [string, FuseOptions][]) {
      const accuracy = await run(true, opts)
      rows.push({ rule: name, accuracy })
      await recordRow('poisoning', { rule: name, attacker: '1 of 4 (delta x -20)', accuracy: accuracy.toFixed(3), noAttacker: clean.toFixed(3), loss: (100 * (clean - accuracy)).toFixed(1) + ' pts', rounds: ROUNDS, data: source })
    }
    const robust = rows.filter((r) => r.rule !== 'mean')
    for (const r of robust) assert.ok(r.accuracy > rows[0].accuracy, `${r.rule} should beat the plain mean under attack`)
  })
})
