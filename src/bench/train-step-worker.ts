import { activateBackend, type BackendName } from '../model/backend.js'
import { builtinModelConfig } from '../model/config.js'
import { initBody, initHead } from '../model/init.js'
import { HashedWordTokenizer } from '../model/tokenizer.js'
import { measureStep, profileStep, type KernelShare } from '../train/stepbench.js'
import { fineTune, type Example } from '../train/trainer.js'
import { mulberry32 } from '../data/rng.js'
import { bareLoopSeconds } from './bare-loop.js'
import { childMain } from './child.js'

/** The tfjs side of the training-step benchmark, one backend per process. */
export interface StepJob {
  backend: BackendName
  batches: number[]
  steps: number
  repeats: number
  profile: boolean
  /** Steps of the daemon-loop vs bare-loop comparison (0: skip). */
  loopSteps: number
}

export interface StepResult {
  backend: BackendName
  seqLen: number
  msPerStep: Record<string, number>
  profile?: { batch: number; totalMs: number; kernels: KernelShare[] }
  loop?: { batch: number; steps: number; daemonSeconds: number; bareSeconds: number }
}

const SEQ = 32

/** Texts of 40 words: every batch fills the built-in 32-token window, like the synthetic steps. */
function longExamples(n: number): Example[] {
  const r = mulberry32(7)
  return Array.from({ length: n }, (_, i) => ({ text: Array.from({ length: 40 }, () => `w${Math.floor(r() * 5000)}`).join(' '), label: i % 2 }))
}

async function run(job: StepJob): Promise<StepResult> {
  await activateBackend(job.backend)
  const config = builtinModelConfig()
  const msPerStep: Record<string, number> = {}
  for (const b of job.batches) {
    let best = Infinity
    for (let i = 0; i < job.repeats; i++) best = Math.min(best, await measureStep(job.backend, b, SEQ, job.steps))
    msPerStep[String(b)] = best * 1000
  }
  const out: StepResult = { backend: job.backend, seqLen: SEQ, msPerStep }
  if (job.profile) out.profile = { batch: job.batches[0], ...(await profileStep(job.batches[0], SEQ, config)) }
  if (job.loopSteps > 0) {
    const batch = job.batches[0]
    const examples = longExamples(256)
    const tok = new HashedWordTokenizer(config.vocab_size)
    const batches = Array.from({ length: 16 }, (_, k) => {
      const part = examples.slice(k * batch, (k + 1) * batch)
      return { data: tok.encodeBatch(part.map((e) => e.text), SEQ), labels: Int32Array.from(part, (e) => e.label) }
    })
    const body = initBody(config, 'bench')
    const head = initHead(config, 2, 'bench')
    let daemonSeconds = Infinity
    let bareSeconds = Infinity
    // Alternate, best of each: both see the same machine state.
    for (let i = 0; i < job.repeats; i++) {
      const r = await fineTune({ config, body, head, examples, numLabels: 2, steps: job.loopSteps, batchSize: batch, lr: 1e-4, lrSchedule: 'constant', seed: 'bench', maxLen: SEQ })
      daemonSeconds = Math.min(daemonSeconds, r.seconds)
      bareSeconds = Math.min(bareSeconds, bareLoopSeconds(config, body, head, batches, 2, job.loopSteps, 1e-4))
    }
    out.loop = { batch, steps: job.loopSteps, daemonSeconds, bareSeconds }
  }
  return out
}

childMain(run)
