import type { SwarmDefinition } from '../config/swarm.js'
import { initHead } from '../model/init.js'
import { decodeSafetensors, encodeSafetensors } from '../model/safetensors.js'
import type { TensorMap } from '../model/tensors.js'
import type { Tokenizer } from '../model/tokenizer.js'
import type { LocalTrainer } from '../rounds/runner.js'
import { writeFileAtomic } from '../util/atomic.js'
import { readFile } from 'node:fs/promises'
import type { Logger } from '../util/log.js'
import { evaluate, fineTune, type Example } from './trainer.js'

export interface LocalData {
  train: Example[]
  eval: Example[]
  numLabels: number
}

/**
 * This node's side of a round: fine-tune the shared base with its own task head on its own data.
 * The head is kept across rounds (a warm start) and saved only when a round commits, so a crash
 * mid-round leaves the head of the last committed round.
 */
export class NodeTrainer implements LocalTrainer {
  private head!: TensorMap
  private pending?: TensorMap

  constructor(
    private readonly def: SwarmDefinition,
    private readonly data: LocalData,
    private readonly headPath: string,
    private readonly seed: string,
    private readonly log: Logger,
    /** The swarm's tokenizer (a Hugging Face base); the built-in hashed-word one when undefined. */
    private readonly tokenizer?: Tokenizer,
  ) {}

  async init(): Promise<void> {
    const config = this.def.model.architecture
    try {
      const buf = await readFile(this.headPath)
      const head = decodeSafetensors(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength), this.headPath).tensors
      const out = head.get('classifier.out_proj.weight')
      if (!out || out.shape[0] !== this.data.numLabels || out.shape[1] !== config.hidden_size) {
        this.log.warn({ file: this.headPath }, 'saved task head does not fit the data (label count changed); starting a new head')
      } else {
        this.head = head
        return
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        this.log.warn({ file: this.headPath, err: (err as Error).message }, 'saved task head is unreadable; starting a new head')
      }
    }
    this.head = initHead(config, this.data.numLabels, `head:${this.seed}`)
  }

  async train(base: TensorMap, round: number, onStep: (step: number, total: number) => void, signal: AbortSignal) {
    const t = this.def.training
    const maxLen = this.def.model.tokenizer.maxLength
    const config = this.def.model.architecture
    const evalBefore = await this.evaluate(base)
    const res = await fineTune({
      config, body: base, head: this.head, examples: this.data.train, numLabels: this.data.numLabels,
      steps: t.stepsPerRound, batchSize: t.batchSize, lr: t.learningRate, lrSchedule: t.lrSchedule, seed: `${this.seed}:${round}`, maxLen, tokenizer: this.tokenizer,
      onStep: (step, total) => onStep(step, total), signal,
    })
    this.pending = res.head
    const evalLocal = await this.evaluateWith(res.body, res.head)
    return { body: res.body, examples: this.data.train.length, loss: res.meanLoss, seconds: res.seconds, evalBefore, evalLocal }
  }

  async evaluate(base: TensorMap): Promise<number> {
    return this.evaluateWith(base, this.pending ?? this.head)
  }

  private async evaluateWith(body: TensorMap, head: TensorMap): Promise<number> {
    if (this.data.eval.length === 0) return NaN
    const r = await evaluate({ config: this.def.model.architecture, body, head, examples: this.data.eval, maxLen: this.def.model.tokenizer.maxLength, tokenizer: this.tokenizer })
    return r.accuracy
  }

  async commitHead(): Promise<void> {
    if (!this.pending) return
    this.head = this.pending
    this.pending = undefined
    await writeFileAtomic(this.headPath, encodeSafetensors(this.head))
  }

  discardHead(): void {
    this.pending = undefined
  }
}
