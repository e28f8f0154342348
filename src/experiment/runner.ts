import { spawn } from 'node:child_process'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { builtinModelConfig } from '../model/config.js'
import { initBody } from '../model/init.js'
import { readEvalSet, sampleExamples } from '../eval/data.js'
import { loadEvalBase } from '../eval/model.js'
import { writeBuiltinBaseDir } from './base-dir.js'
import { simulateRounds, trainMultitask, type CentralTask, type CentralTraining } from './central.js'
import { BIN, runSwarm, type SwarmSpec } from './swarm.js'
import { renderReport, type EvalRecord, type Summary } from './report.js'
import { recordKey, RunJournal } from './journal.js'

export interface ExperimentOptions {
  data: string
  out: string
  tasks: string[]
  rounds: number
  /** Training examples each node holds (a seeded sample of the task's train set; undefined: all). */
  nodeTrainN?: number
  /** Local steps per round (default: one epoch of nodeTrainN). */
  steps?: number
  batchSize: number
  lr: number
  seeds: number
  probeN: number
  probeEpochs: number
  fewN: number
  fewEpochs: number
  /** Full-data protocol: undefined = the whole train set. */
  fullN?: number
  fullEpochs: number
  fullSeeds: number
  loo: boolean
  /** Extra fusion rules compared in-process (central simulation): "ties:density=0.2". */
  rules: string[]
  jobs: number
  /** Continue the run already in `out` (same options): finished stages and evaluations are kept. */
  resume?: boolean
  baseSeed: string
  maxLen: number
  /** Delta compression of the swarms (default: the swarm default, q8-block); part of the run's options. */
  codec?: SwarmSpec['codec']
  log: (line: string) => void
}

export const PROTOCOLS = ['probe', 'few', 'full'] as const
export type Protocol = (typeof PROTOCOLS)[number]

export async function runExperiment(o: ExperimentOptions): Promise<Summary> {
  const started = Date.now()
  const out = resolve(o.out)
  const { log: _log, out: _out, jobs: _jobs, resume: _resume, ...settings } = o
  const journal = await RunJournal.open(out, settings, o.resume ?? false, o.log)
  const config = builtinModelConfig()
  const genesis = initBody(config, o.baseSeed)
  const steps = o.steps ?? Math.ceil((o.nodeTrainN ?? 5000) / o.batchSize)
  // Each node's training file: a seeded sample of the task's train set (empty texts skipped).
  const nodeData: { task: string; trainFile: string; numLabels: number; train: CentralTask['train'] }[] = []
  for (const task of o.tasks) {
    const set = await readEvalSet(join(o.data, task, 'train.jsonl'))
    const train = sampleExamples(set.examples, o.nodeTrainN, 'node-data', task)
    const file = join(out, 'data', task, 'train.jsonl')
    await mkdir(join(out, 'data', task), { recursive: true })
    await writeFile(file, train.map((e) => JSON.stringify(e)).join('\n') + '\n')
    nodeData.push({ task, trainFile: file, numLabels: set.labels?.length ?? Math.max(...train.map((e) => e.label)) + 1, train })
  }
  const bases: Summary['bases'] = {}
  const initialDir = join(out, 'bases', 'initial')
  bases.initial = await journal.stage('initial', initialDir, async () => ({ dir: initialDir, hash: await writeBuiltinBaseDir(initialDir, config, genesis, o.maxLen) }))
  o.log(`initial base: built-in model (2 layers, width 64) from seed "${o.baseSeed}", ${bases.initial.hash.slice(0, 12)} -> ${initialDir}`)

  // 2. ColD Fusion: a real local swarm, one daemon per task.
  const swarm = { rounds: o.rounds, steps, batchSize: o.batchSize, lr: o.lr, baseSeed: o.baseSeed, timeoutSec: 3600, codec: o.codec }
  o.log(`colD fusion swarm: ${o.tasks.length} daemons, ${o.rounds} rounds x ${steps} steps${o.codec ? `, ${o.codec.codec} deltas` : ''}`)
  const main = await journal.stage('swarm-all', join(out, 'swarm-all'), () => runSwarm({ ...swarm, dir: join(out, 'swarm-all'), nodes: nodeData, fusion: { rule: 'mean' }, onProgress: (l) => o.log(`  ${l}`) }))
  if (main.hashes[0] !== bases.initial.hash) throw new Error('the swarm started from another base than the initial one')
  for (let r = 1; r <= o.rounds; r++) bases[`fused-r${r}`] = { dir: main.baseDirs[r], hash: main.hashes[r] }
  o.log(`swarm done in ${main.seconds.toFixed(0)} s, agreed: ${main.agreed}`)

  // 3. Unseen tasks: leave one task out.
  const looRuns: Record<string, { agreed: boolean; seconds: number }> = {}
  if (o.loo) {
    for (const held of o.tasks) {
      const dir = join(out, `swarm-without-${held}`)
      const run = await journal.stage(`swarm-without-${held}`, dir, () => runSwarm({ ...swarm, dir, nodes: nodeData.filter((n) => n.task !== held), fusion: { rule: 'mean' } }))
      bases[`unseen-${held}`] = { dir: run.baseDirs[o.rounds], hash: run.hashes[o.rounds] }
      looRuns[held] = { agreed: run.agreed, seconds: run.seconds }
      o.log(`swarm without ${held}: ${run.seconds.toFixed(0)} s, agreed: ${run.agreed}`)
    }
  }

  // 4. Multitask reference (in-process, same data, same steps per task and round), and 6. rules.
  const { selectBackend } = await import('../model/backend.js')
  await selectBackend({ prefer: 'auto' })
  const training: CentralTraining = { config, maxLen: o.maxLen, steps, batchSize: o.batchSize, lr: o.lr, seed: o.baseSeed }
  const central: CentralTask[] = nodeData.map((n) => ({ name: n.task, numLabels: n.numLabels, train: n.train }))
  const mtDir = join(out, 'bases', 'multitask')
  bases.multitask = await journal.stage('multitask', mtDir, async () => {
    const t0 = Date.now()
    const mt = await trainMultitask(training, genesis, central, o.rounds, 25, (r) => o.log(`multitask: round ${r} of compute done`))
    const hash = await writeBuiltinBaseDir(mtDir, config, mt[mt.length - 1], o.maxLen)
    o.log(`multitask reference: ${((Date.now() - t0) / 1000).toFixed(0)} s`)
    return { dir: mtDir, hash }
  })
  for (const spec of o.rules) {
    const { rule, params } = parseRule(spec)
    const dir = join(out, 'bases', `rule-${spec.replace(/[^a-z0-9.=-]/gi, '_')}`)
    bases[`rule:${spec}`] = await journal.stage(`rule:${spec}`, dir, async () => {
      const t1 = Date.now()
      const rounds = await simulateRounds(training, genesis, central, o.rounds, rule, params)
      const hash = await writeBuiltinBaseDir(dir, config, rounds[rounds.length - 1], o.maxLen)
      o.log(`rule ${spec} (in-process): ${((Date.now() - t1) / 1000).toFixed(0)} s`)
      return { dir, hash }
    })
  }

  // Evaluation jobs, each a `coldfusiond eval --json` process.
  type Job = { arm: string; round: number; task: string; protocol: Protocol; seed: number; dir: string }
  const jobs: Job[] = []
  const seeds = Array.from({ length: o.seeds }, (_, i) => i + 1)
  const add = (arm: string, round: number, dir: string, tasks: string[], protocols: readonly Protocol[]) => {
    for (const protocol of protocols) for (const seed of protocol === 'full' ? seeds.slice(0, o.fullSeeds) : seeds) for (const task of tasks) jobs.push({ arm, round, task, protocol, seed, dir })
  }
  // The final bases first (the rule comparison among them), the by-round series last.
  add('initial', 0, initialDir, o.tasks, PROTOCOLS)
  add('fused', o.rounds, main.baseDirs[o.rounds], o.tasks, PROTOCOLS)
  for (const spec of o.rules) add(`rule:${spec}`, o.rounds, bases[`rule:${spec}`].dir, o.tasks, ['probe', 'few'])
  add('multitask', o.rounds, mtDir, o.tasks, PROTOCOLS)
  if (o.loo) for (const held of o.tasks) add('unseen', o.rounds, bases[`unseen-${held}`].dir, [held], ['probe', 'few'])
  for (let r = 1; r < o.rounds; r++) add('fused', r, main.baseDirs[r], o.tasks, ['probe', 'few'])
  const todo = jobs.filter((j) => !journal.has(recordKey(j)))
  o.log(`evaluating: ${todo.length} eval runs${todo.length < jobs.length ? ` (${jobs.length - todo.length} done before)` : ''}, ${o.jobs} at a time`)
  const records: EvalRecord[] = journal.records().filter((r) => jobs.some((j) => recordKey(j) === recordKey(r)))
  let next = 0
  let done = 0
  const worker = async () => {
    while (next < todo.length) {
      const j = todo[next++]
      const args = ['eval', '--model', j.dir, '--train', join(o.data, j.task, 'train.jsonl'), '--test', join(o.data, j.task, 'test.jsonl'), '--seed', String(j.seed), '--json']
      if (j.protocol === 'probe') args.push('--probe', '--train-n', String(o.probeN), '--epochs', String(o.probeEpochs))
      if (j.protocol === 'few') args.push('--train-n', String(o.fewN), '--epochs', String(o.fewEpochs))
      if (j.protocol === 'full') args.push('--epochs', String(o.fullEpochs), ...(o.fullN ? ['--train-n', String(o.fullN)] : []))
      const r = JSON.parse(await runNode(args)) as { accuracy: number; examples: number; seconds: number }
      const rec: EvalRecord = { ...j, dir: undefined, accuracy: r.accuracy, examples: r.examples, seconds: r.seconds }
      records.push(rec)
      await journal.record(rec)
      done++
      o.log(`  [${done}/${todo.length}] ${j.arm} r${j.round} ${j.task} ${j.protocol} seed ${j.seed}: ${(100 * r.accuracy).toFixed(1)} (${r.seconds.toFixed(0)} s)`)
    }
  }
  await Promise.all(Array.from({ length: o.jobs }, worker))
  records.sort((a, b) => (a.arm + a.round + a.task + a.protocol + a.seed < b.arm + b.round + b.task + b.protocol + b.seed ? -1 : 1))

  const summary: Summary = {
    options: { ...o, log: undefined, steps }, records, bases,
    swarms: { all: { agreed: main.agreed, seconds: main.seconds, dir: main.dir }, leaveOneOut: looRuns },
    seconds: (Date.now() - started) / 1000,
    files: { json: join(out, 'summary.json'), report: join(out, 'report.md'), plot: join(out, 'accuracy-by-round.svg') },
  }
  const { markdown, svg } = renderReport(summary)
  await writeFile(summary.files.json, JSON.stringify(summary, null, 2) + '\n')
  await writeFile(summary.files.report, markdown)
  await writeFile(summary.files.plot, svg)
  // Keep the loader honest: every evaluated base loads as eval would load it.
  await loadEvalBase(initialDir)
  return summary
}

export function parseRule(spec: string): { rule: string; params: Record<string, number> } {
  const [rule, ...kv] = spec.split(':')
  const params: Record<string, number> = {}
  for (const p of kv.join(':').split(',').filter(Boolean)) {
    const [k, v] = p.split('=')
    if (!k || v === undefined || !Number.isFinite(Number(v))) throw new Error(`rule ${spec}: params are k=number, comma-separated`)
    params[k] = Number(v)
  }
  return { rule, params }
}

function runNode(args: string[]): Promise<string> {
  return new Promise((res, rej) => {
    const c = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    c.stdout.on('data', (d) => (stdout += d))
    c.stderr.on('data', (d) => (stderr += d))
    c.on('exit', (code) => (code === 0 ? res(stdout.trim().split('\n').pop()!) : rej(new Error(`coldfusiond ${args.join(' ')} failed (${code}): ${stderr.slice(-2000)}`))))
  })
}

export async function readSummary(file: string): Promise<Summary> {
  return JSON.parse(await readFile(file, 'utf8')) as Summary
}
