import assert from 'node:assert/strict'
import { appendFile, mkdir, mkdtemp, readdir, readFile, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { builtinModelConfig } from '../src/model/config.js'
import { initBody } from '../src/model/init.js'
import { writeBuiltinBaseDir } from '../src/experiment/base-dir.js'
import { RunJournal, recordKey } from '../src/experiment/journal.js'
import { runExperiment, type ExperimentOptions } from '../src/experiment/runner.js'
import { runSwarm } from '../src/experiment/swarm.js'
import { loadSwarmDefinition } from '../src/config/swarm.js'
import type { EvalRecord } from '../src/experiment/report.js'
import { runCli } from './helpers/cli.js'

const quiet = () => {}
const rec = (task: string, seed: number): EvalRecord => ({ arm: 'initial', round: 0, task, protocol: 'probe', seed, accuracy: 0.5, examples: 10, seconds: 1 })

/** Two tiny generated tasks (a, b), 48 examples each, as TASK/train.jsonl and TASK/test.jsonl. */
async function writeTasks(root: string): Promise<string> {
  const data = join(root, 'data')
  for (const [task, words] of [['a', ['good', 'bad']], ['b', ['yes', 'no']]] as const) {
    await mkdir(join(data, task), { recursive: true })
    const lines = Array.from({ length: 48 }, (_, i) => JSON.stringify({ text: `${words[i % 2]} item ${i}`, label: i % 2 })).join('\n') + '\n'
    await writeFile(join(data, task, 'train.jsonl'), lines)
    await writeFile(join(data, task, 'test.jsonl'), lines)
  }
  return data
}

describe('experiment --resume (journal of stages and evaluations)', function () {
  this.timeout(120_000)

  it('keeps finished stages and records, drops a torn line, and refuses other options', async () => {
    const out = join(await mkdtemp(join(tmpdir(), 'cfd-journal-')), 'run')
    const j = await RunJournal.open(out, { rounds: 3 }, false, quiet)
    let runs = 0
    assert.deepEqual(await j.stage('swarm', join(out, 'swarm'), async () => (runs++, { hash: 'h1' })), { hash: 'h1' })
    await j.record(rec('a', 1))
    await j.record(rec('b', 1))
    await appendFile(join(out, 'records.jsonl'), '{"arm":"initial","round":0,"ta') // killed mid-write
    await mkdir(join(out, 'half-done'))
    await writeFile(join(out, 'half-done', 'junk'), 'x')
    await assert.rejects(RunJournal.open(out, { rounds: 3 }, false, quiet), /is not empty; give --out a new directory, or --resume/)
    await assert.rejects(RunJournal.open(out, { rounds: 4 }, true, quiet), /started with other options \(rounds: 3 there, 4 now\)/)

    const again = await RunJournal.open(out, { rounds: 3 }, true, quiet)
    assert.deepEqual(await again.stage('swarm', join(out, 'swarm'), async () => (runs++, { hash: 'other' })), { hash: 'h1' })
    assert.equal(runs, 1)
    assert.ok(again.has(recordKey(rec('a', 1))) && again.has(recordKey(rec('b', 1))))
    assert.ok(!again.has(recordKey(rec('a', 2))))
    // An unfinished stage starts over in a clean directory.
    await again.stage('half', join(out, 'half-done'), async () => {
      await assert.rejects(stat(join(out, 'half-done', 'junk')), /ENOENT/)
      return 1
    })
    await again.record(rec('a', 2))
    const lines = (await readFile(join(out, 'records.jsonl'), 'utf8')).trim().split('\n')
    assert.deepEqual(lines.map((l) => JSON.parse(l).seed), [1, 1, 2])
  })

  it('a run killed during evaluation resumes with only the missing evaluations', async () => {
    const root = await mkdtemp(join(tmpdir(), 'cfd-resume-'))
    const data = await writeTasks(root)
    const o: ExperimentOptions = {
      data, out: join(root, 'run'), tasks: ['a', 'b'], rounds: 1, nodeTrainN: 32, steps: 2, batchSize: 8, lr: 2e-3, seeds: 1,
      probeN: 16, probeEpochs: 1, fewN: 16, fewEpochs: 1, fullN: 16, fullEpochs: 1, fullSeeds: 1, loo: false, rules: [], jobs: 1,
      baseSeed: 'resume-test', maxLen: 8, log: quiet,
    }
    // What a killed run leaves: its options, its finished stages (the swarm's and multitask bases,
    // written here directly) and all evaluations but one.
    const config = builtinModelConfig()
    const genesis = initBody(config, o.baseSeed)
    const { log: _l, out: _o, jobs: _j, resume: _r, ...settings } = o
    const j = await RunJournal.open(o.out, settings, false, quiet)
    const initialDir = join(o.out, 'bases', 'initial')
    const initial = await j.stage('initial', initialDir, async () => ({ dir: initialDir, hash: await writeBuiltinBaseDir(initialDir, config, genesis, o.maxLen) }))
    const fusedDir = join(o.out, 'swarm-all', 'bases', 'round-1')
    const fusedHash = await writeBuiltinBaseDir(fusedDir, config, initBody(config, 'fused'), o.maxLen)
    await j.stage('swarm-all', undefined, async () => ({ dir: join(o.out, 'swarm-all'), baseDirs: [initialDir, fusedDir], hashes: [initial.hash, fusedHash], agreed: true, seconds: 1 }))
    const mtDir = join(o.out, 'bases', 'multitask')
    await j.stage('multitask', undefined, async () => ({ dir: mtDir, hash: await writeBuiltinBaseDir(mtDir, config, initBody(config, 'mt'), o.maxLen) }))
    const all: EvalRecord[] = []
    for (const [arm, round] of [['initial', 0], ['fused', 1], ['multitask', 1]] as const) {
      for (const protocol of ['probe', 'few', 'full'] as const) for (const task of ['a', 'b']) all.push({ arm, round, task, protocol, seed: 1, accuracy: 0.123, examples: 16, seconds: 1 })
    }
    const missing = all.pop()!
    for (const r of all) await j.record(r)

    const lines: string[] = []
    const s = await runExperiment({ ...o, resume: true, log: (l) => lines.push(l) })
    assert.ok(lines.some((l) => /evaluating: 1 eval runs \(17 done before\)/.test(l)), lines.join('\n'))
    assert.equal(s.records.length, 18)
    const fresh = s.records.filter((r) => r.accuracy !== 0.123)
    assert.deepEqual(fresh.map(recordKey), [recordKey(missing)])
    assert.equal((await readFile(join(o.out, 'records.jsonl'), 'utf8')).trim().split('\n').length, 18)
    assert.match(await readFile(s.files.report, 'utf8'), /## fine-tuning, full data/)
  })

  it("the experiment's swarm runs real daemons with the codec it is given (topk-q4 at 5%)", async function () {
    this.timeout(240_000)
    const root = await mkdtemp(join(tmpdir(), 'cfd-exp-codec-'))
    const data = await writeTasks(root)
    const dir = join(root, 'swarm')
    const run = await runSwarm({
      dir, nodes: ['a', 'b'].map((task) => ({ task, trainFile: join(data, task, 'train.jsonl') })), rounds: 1, steps: 2, batchSize: 8, lr: 2e-3,
      baseSeed: 'codec-test', fusion: { rule: 'mean' }, codec: { codec: 'topk-q4', densityPpm: 50_000 }, timeoutSec: 180,
    })
    assert.ok(run.agreed)
    assert.notEqual(run.hashes[1], run.hashes[0])
    assert.deepEqual((await loadSwarmDefinition(join(dir, 'swarm.json'))).def.compression, { codec: 'topk-q4', blockSize: 256, densityPpm: 50_000 })
    // Each node's delta is a top-k payload: about 5% of 206,592 values, not q8-block's 213 KB.
    const home = join(dir, 'node-0-a')
    const deltas = await readdir(join(home, 'deltas'))
    assert.equal(deltas.length, 2)
    for (const f of deltas) {
      const size = (await stat(join(home, 'deltas', f))).size
      assert.ok(size > 5_000 && size < 40_000, `${f}: ${size} bytes`)
    }
    const r = await runCli(['experiment', '--out', join(root, 'x'), '--density-ppm', '1000'])
    assert.equal(r.code, 2)
    assert.match(r.stderr, /--density-ppm applies to the top-k codecs/)
  })

  it('the CLI refuses --out together with --resume', async () => {
    const r = await runCli(['experiment', '--out', '/tmp/x', '--resume', '/tmp/y'])
    assert.equal(r.code, 2)
    assert.match(r.stderr, /either --out \(a new run\) or --resume/)
  })
})
