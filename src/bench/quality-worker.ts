import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { CodecSettings } from '../codec/index.js'
import { activateBackend, type BackendName } from '../model/backend.js'
import { builtinModelConfig } from '../model/config.js'
import { initBody, initHead } from '../model/init.js'
import { decodeSafetensors, encodeSafetensors } from '../model/safetensors.js'
import type { TensorMap } from '../model/tensors.js'
import { childMain } from './child.js'
import { simulate, trainNodes, type SimResult, type Trained, type Training } from './central-sim.js'
import { loadTask, REAL_TASKS, type Task } from './tasks.js'

/**
 * One process of the quality benchmark: `round1` trains the first round (the same for every
 * codec) and stores it in `cacheDir`; `codec` simulates all rounds for one codec from there.
 */
export interface QualityJob {
  mode: 'round1' | 'codec'
  dataDir: string
  cacheDir: string
  trainN: number
  testN: number
  seed: string
  steps: number
  batchSize: number
  lr: number
  rounds: number
  backend: BackendName
  codec?: CodecSettings
}

interface Setup {
  training: Training
  tasks: Task[]
  genesis: TensorMap
  heads: TensorMap[]
}

async function setup(job: QualityJob): Promise<Setup> {
  await activateBackend(job.backend)
  const config = builtinModelConfig()
  const tasks = await Promise.all(REAL_TASKS.map((name) => loadTask(job.dataDir, name, job.trainN, job.testN, job.seed)))
  return {
    training: { config, maxLen: 32, steps: job.steps, batchSize: job.batchSize, lr: job.lr, seed: job.seed },
    tasks,
    genesis: initBody(config, `bench-genesis:${job.seed}`),
    heads: tasks.map((t, i) => initHead(config, t.labels.length, `bench-head:${job.seed}:${i}`)),
  }
}

async function readTensors(file: string): Promise<TensorMap> {
  const buf = await readFile(file)
  return decodeSafetensors(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength), file).tensors
}

async function run(job: QualityJob): Promise<{ sim?: SimResult; round1Seconds?: number[] }> {
  const s = await setup(job)
  if (job.mode === 'round1') {
    const trained = await trainNodes(s.training, s.genesis, s.heads, s.tasks, 1)
    await mkdir(job.cacheDir, { recursive: true })
    for (let i = 0; i < trained.length; i++) {
      await writeFile(join(job.cacheDir, `node${i}.body.safetensors`), encodeSafetensors(trained[i].body))
      await writeFile(join(job.cacheDir, `node${i}.head.safetensors`), encodeSafetensors(trained[i].head))
    }
    const round1Seconds = trained.map((t) => t.seconds)
    await writeFile(join(job.cacheDir, 'seconds.json'), JSON.stringify(round1Seconds))
    return { round1Seconds }
  }
  const seconds = JSON.parse(await readFile(join(job.cacheDir, 'seconds.json'), 'utf8')) as number[]
  const round1: Trained[] = []
  for (let i = 0; i < s.tasks.length; i++) {
    round1.push({ body: await readTensors(join(job.cacheDir, `node${i}.body.safetensors`)), head: await readTensors(join(job.cacheDir, `node${i}.head.safetensors`)), seconds: seconds[i] })
  }
  const label = `${job.codec!.codec}${job.codec!.densityPpm ? `@${job.codec!.densityPpm}ppm` : ''}`
  const sim = await simulate({
    training: s.training, codec: job.codec!, rounds: job.rounds, tasks: s.tasks, genesis: s.genesis, heads: s.heads, round1,
    onRound: (r) => process.stderr.write(`  quality ${label}: round ${r.round}/${job.rounds} accuracy ${(100 * r.accuracy).toFixed(1)} bytes ${Math.round(r.bytes.reduce((a, b) => a + b, 0) / r.bytes.length)}\n`),
  })
  process.stderr.write(`  quality ${label}: fine-tuned final base ${(100 * sim.finetuned.accuracy).toFixed(1)}\n`)
  return { sim }
}

childMain(run)
