import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { activateBackend } from '../src/model/backend.js'
import { builtinModelConfig } from '../src/model/config.js'
import { initBody } from '../src/model/init.js'
import { writeBuiltinBaseDir } from '../src/experiment/base-dir.js'
import { loadEvalBase } from '../src/eval/model.js'
import { readEvalSet, sampleExamples } from '../src/eval/data.js'
import { runEval } from '../src/cli/eval.js'
import { runCli } from './helpers/cli.js'

/** A tiny separable task: the label is which of two word sets a sentence uses. */
function task(n: number, seed: number): string {
  const a = ['good', 'great', 'fine', 'nice']
  const b = ['bad', 'awful', 'poor', 'sad']
  const lines: string[] = []
  for (let i = 0; i < n; i++) {
    const label = (i + seed) % 2
    const w = (label ? b : a)[(i * 7 + seed) % 4]
    lines.push(JSON.stringify({ text: `the film was ${w} and ${w}`, label }))
  }
  lines.push(JSON.stringify({ text: '', label: 0 })) // skipped, as the public sets' empty texts
  return lines.join('\n') + '\n'
}

describe('eval', function () {
  this.timeout(120_000)
  let dir: string
  let model: string
  before(async () => {
    await activateBackend('wasm')
    dir = await mkdtemp(join(tmpdir(), 'cfd-eval-'))
    model = join(dir, 'base')
    const config = builtinModelConfig()
    await writeBuiltinBaseDir(model, config, initBody(config, 'eval-test'), 16)
    await writeFile(join(dir, 'train.jsonl'), task(64, 1))
    await writeFile(join(dir, 'test.jsonl'), task(32, 2))
  })
  after(async () => rm(dir, { recursive: true, force: true }))

  it('loads an exported built-in base with its tokenizer settings', async () => {
    const b = await loadEvalBase(model)
    assert.equal(b.tokenizerKind, 'hashed-words')
    assert.equal(b.maxLen, 16)
    assert.equal(b.config.hidden_size, 64)
    const set = await readEvalSet(join(dir, 'train.jsonl'))
    assert.equal(set.examples.length, 64)
    assert.equal(set.skipped, 1)
  })

  it('samples a fixed, seeded subset', () => {
    const xs = Array.from({ length: 100 }, (_, i) => i)
    assert.deepEqual(sampleExamples(xs, 10, 'train', '3'), sampleExamples(xs, 10, 'train', '3'))
    assert.notDeepEqual(sampleExamples(xs, 10, 'train', '3'), sampleExamples(xs, 10, 'train', '4'))
    assert.equal(sampleExamples(xs, 10, 'x').length, 10)
  })

  it('fine-tunes and probes a fresh head; the same seed repeats the run', async () => {
    const o = { model, train: join(dir, 'train.jsonl'), test: join(dir, 'test.jsonl'), trainN: 48, epochs: 4, seed: '1' }
    const ft = await runEval(o)
    assert.equal(ft.examples, 48)
    assert.equal(ft.protocol, 'fine-tune')
    assert.ok(ft.accuracy >= 0 && ft.accuracy <= 1 && ft.steps === 12)
    const again = await runEval(o)
    assert.equal(again.accuracy, ft.accuracy)
    assert.equal(again.loss, ft.loss)
    const pr = await runEval({ ...o, probe: true, epochs: 8 })
    assert.equal(pr.protocol, 'probe')
    assert.ok(pr.accuracy >= 0 && pr.accuracy <= 1)
    assert.equal((await runEval({ ...o, probe: true, epochs: 8 })).loss, pr.loss)
  })

  it('coldfusiond eval --json prints accuracy, examples and seconds', async () => {
    const r = await runCli(['eval', '--model', model, '--train', join(dir, 'train.jsonl'), '--test', join(dir, 'test.jsonl'), '--train-n', '16', '--epochs', '1', '--probe', '--backend', 'wasm', '--json'], { timeoutMs: 90_000 })
    assert.equal(r.code, 0, r.stderr)
    const j = JSON.parse(r.stdout)
    assert.equal(typeof j.accuracy, 'number')
    assert.equal(j.examples, 16)
    assert.equal(typeof j.seconds, 'number')
    const bad = await runCli(['eval', '--model', join(dir, 'nope'), '--train', join(dir, 'train.jsonl'), '--test', join(dir, 'test.jsonl')])
    assert.equal(bad.code, 2)
    assert.match(bad.stderr, /config.json/)
  })
})
