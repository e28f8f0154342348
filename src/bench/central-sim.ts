import { encodeDelta, ErrorFeedback, type CodecSettings } from '../codec/index.js'
import { fuseRound, hashTensors } from '../fusion/index.js'
import type { ModelConfig } from '../model/config.js'
import type { TensorMap } from '../model/tensors.js'
import { subtractBody } from '../rounds/runner.js'
import { evaluate, fineTune } from '../train/trainer.js'
import type { Task } from './tasks.js'

/**
 * ColD Fusion rounds without the network: every node trains with the real trainer on its own
 * task, encodes its delta with the real codec and its own error feedback, and the round's deltas
 * go through the real fuseRound. Only the transport and agreement are left out, so codecs can be
 * compared on the accuracy of the fused base alone.
 */

export interface Training {
  config: ModelConfig
  maxLen: number
  steps: number
  batchSize: number
  lr: number
  seed: string
}

export interface Trained {
  body: TensorMap
  head: TensorMap
  seconds: number
}

export interface RoundRecord {
  round: number
  /** Mean over nodes of the fused base's test accuracy with the node's head (a node's evalAfter). */
  accuracy: number
  perTask: Record<string, number>
  /** Payload bytes per node. */
  bytes: number[]
  /** Seconds per node: error feedback + encoding, and local training. */
  encodeSeconds: number[]
  trainSeconds: number[]
}

/** One round of local training for every node: the same inputs give the same result. */
export async function trainNodes(t: Training, base: TensorMap, heads: TensorMap[], tasks: Task[], round: number): Promise<Trained[]> {
  const out: Trained[] = []
  for (let i = 0; i < tasks.length; i++) {
    const res = await fineTune({
      config: t.config, body: base, head: heads[i], examples: tasks[i].train, numLabels: tasks[i].labels.length,
      steps: t.steps, batchSize: t.batchSize, lr: t.lr, lrSchedule: 'constant', seed: `${t.seed}:node${i}:round${round}`, maxLen: t.maxLen,
    })
    out.push({ body: res.body, head: res.head, seconds: res.seconds })
  }
  return out
}

export interface SimOptions {
  training: Training
  codec: CodecSettings
  rounds: number
  tasks: Task[]
  genesis: TensorMap
  heads: TensorMap[]
  /** Round 1 trains from the genesis for every codec alike: pass it in to train it once. */
  round1?: Trained[]
  onRound?: (r: RoundRecord) => void
}

export interface SimResult {
  rounds: RoundRecord[]
  /**
   * The final base as the paper evaluates a base: each node fine-tunes it (with its head) for
   * one more round on its task, then is tested; mean over nodes, and per task.
   */
  finetuned: { accuracy: number; perTask: Record<string, number> }
}

export async function simulate(o: SimOptions): Promise<SimResult> {
  let base = o.genesis
  const heads = [...o.heads]
  const feedback = o.tasks.map(() => ErrorFeedback.inMemory())
  const records: RoundRecord[] = []
  for (let round = 1; round <= o.rounds; round++) {
    const trained = round === 1 && o.round1 ? o.round1 : await trainNodes(o.training, base, heads, o.tasks, round)
    const baseHash = hashTensors(base)
    const deltas = []
    const encodeSeconds: number[] = []
    for (let i = 0; i < o.tasks.length; i++) {
      const delta = subtractBody(trained[i].body, base)
      const t0 = performance.now()
      const sent = feedback[i].apply(delta)
      const enc = encodeDelta(sent, o.codec, { round, baseHash, examples: o.tasks[i].train.length })
      feedback[i].update(sent, enc.reconstruction)
      encodeSeconds.push((performance.now() - t0) / 1000)
      await feedback[i].commit() // in the simulation every delta is fused
      deltas.push({ id: enc.deltaId, payload: enc.payload, examples: o.tasks[i].train.length })
      heads[i] = trained[i].head
    }
    base = fuseRound(base, deltas, { baseHash })
    const perTask: Record<string, number> = {}
    let sum = 0
    for (let i = 0; i < o.tasks.length; i++) {
      const r = await evaluate({ config: o.training.config, body: base, head: heads[i], examples: o.tasks[i].test, maxLen: o.training.maxLen })
      perTask[o.tasks[i].name] = r.accuracy
      sum += r.accuracy
    }
    const rec: RoundRecord = {
      round, accuracy: sum / o.tasks.length, perTask,
      bytes: deltas.map((d) => d.payload.length), encodeSeconds, trainSeconds: trained.map((t) => t.seconds),
    }
    records.push(rec)
    o.onRound?.(rec)
  }
  const tuned = await trainNodes(o.training, base, heads, o.tasks, o.rounds + 1)
  const perTask: Record<string, number> = {}
  let sum = 0
  for (let i = 0; i < o.tasks.length; i++) {
    const r = await evaluate({ config: o.training.config, body: tuned[i].body, head: tuned[i].head, examples: o.tasks[i].test, maxLen: o.training.maxLen })
    perTask[o.tasks[i].name] = r.accuracy
    sum += r.accuracy
  }
  return { rounds: records, finetuned: { accuracy: sum / o.tasks.length, perTask } }
}
