import { encodeDelta } from '../codec/index.js'
import { fuseRound, hashTensors } from '../fusion/index.js'
import type { ModelConfig } from '../model/config.js'
import { initHead } from '../model/init.js'
import type { TensorMap } from '../model/tensors.js'
import { subtractBody } from '../rounds/runner.js'
import { fineTune, type Example } from '../train/trainer.js'

export interface CentralTask {
  name: string
  numLabels: number
  train: Example[]
}

export interface CentralTraining {
  config: ModelConfig
  maxLen: number
  steps: number
  batchSize: number
  lr: number
  seed: string
}

/**
 * The multitask reference: one body trained centrally on all tasks with a head per task, for
 * the same number of steps per task as the swarm's nodes take over its rounds. Tasks take turns
 * in chunks of `chunk` steps (round-robin), so no task comes last; Adam restarts per chunk.
 * Returns the body after each `steps`-per-task block, i.e. after each "round" of compute.
 */
export async function trainMultitask(t: CentralTraining, genesis: TensorMap, tasks: CentralTask[], rounds: number, chunk: number, onRound?: (r: number) => void): Promise<TensorMap[]> {
  let body = genesis
  const heads = tasks.map((k) => initHead(t.config, k.numLabels, `multitask-head:${t.seed}:${k.name}`))
  const out: TensorMap[] = []
  for (let r = 1; r <= rounds; r++) {
    for (let done = 0, c = 0; done < t.steps; done += chunk, c++) {
      const steps = Math.min(chunk, t.steps - done)
      for (let i = 0; i < tasks.length; i++) {
        const res = await fineTune({
          config: t.config, body, head: heads[i], examples: tasks[i].train, numLabels: tasks[i].numLabels, steps, batchSize: t.batchSize,
          lr: t.lr, lrSchedule: 'constant', seed: `${t.seed}:multitask:${tasks[i].name}:r${r}:c${c}`, maxLen: t.maxLen,
        })
        body = res.body
        heads[i] = res.head
      }
    }
    out.push(body)
    onRound?.(r)
  }
  return out
}

/**
 * ColD Fusion rounds in one process (as src/bench/central-sim.ts, with a selectable rule): each
 * task's node fine-tunes the base with its own head, encodes its delta (q8-block), and the real
 * fuseRound applies the rule. Returns the base after each round.
 */
export async function simulateRounds(t: CentralTraining, genesis: TensorMap, tasks: CentralTask[], rounds: number, rule: string, params: Record<string, number>): Promise<TensorMap[]> {
  let base = genesis
  const heads = tasks.map((k) => initHead(t.config, k.numLabels, `sim-head:${t.seed}:${k.name}`))
  const out: TensorMap[] = []
  for (let r = 1; r <= rounds; r++) {
    const baseHash = hashTensors(base)
    const deltas = []
    for (let i = 0; i < tasks.length; i++) {
      const res = await fineTune({
        config: t.config, body: base, head: heads[i], examples: tasks[i].train, numLabels: tasks[i].numLabels, steps: t.steps, batchSize: t.batchSize,
        lr: t.lr, lrSchedule: 'constant', seed: `${t.seed}:sim:${tasks[i].name}:r${r}`, maxLen: t.maxLen,
      })
      heads[i] = res.head
      const enc = encodeDelta(subtractBody(res.body, base), { codec: 'q8-block', blockSize: 256 }, { round: r, baseHash, examples: tasks[i].train.length })
      deltas.push({ id: enc.deltaId, payload: enc.payload, examples: tasks[i].train.length })
    }
    base = fuseRound(base, deltas, { baseHash, rule, params })
    out.push(base)
  }
  return out
}
