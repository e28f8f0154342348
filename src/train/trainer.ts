import * as tf from '@tensorflow/tfjs-core'
import type { ModelConfig } from '../model/config.js'
import { assertSupportedConfig, classifierForward, encoderForward, maxSequenceLength, SeededDropout, type Weights } from '../model/encoder.js'
import { ensureGradients } from '../model/gradients.js'
import { bodyTensorShapes, headTensorShapes } from '../model/init.js'
import { Rng } from '../model/prng.js'
import { sortedNames, type TensorMap } from '../model/tensors.js'
import { HashedWordTokenizer, type EncodedBatch, type Tokenizer } from '../model/tokenizer.js'
import { Adam } from './adam.js'

/**
 * Local fine-tuning of the whole model (shared body + local head), as ColD Fusion's contributors
 * do: cross-entropy, Adam with a fresh state per call, seeded batch order and dropout so a run
 * repeats on one backend. Weights enter and leave as Float32Array TensorMaps; every tf tensor and
 * variable created here is disposed before returning, also on error or abort.
 */

export interface Example {
  text: string
  label: number
}

export interface FineTuneOptions {
  config: ModelConfig
  body: TensorMap
  head: TensorMap
  examples: Example[]
  numLabels: number
  steps: number
  batchSize: number
  lr: number
  seed: number | string
  /** Longest sequence including <s> and </s>. */
  maxLen: number
  tokenizer?: Tokenizer
  /** 'linear' (default): decays to 0 over `steps`, as Hugging Face's default schedule; or 'constant'. */
  lrSchedule?: 'linear' | 'constant'
  onStep?: (step: number, total: number, loss: number) => void
  signal?: AbortSignal
}

export interface FineTuneResult {
  body: TensorMap
  head: TensorMap
  meanLoss: number
  examplesSeen: number
  seconds: number
}

export interface EvaluateOptions {
  config: ModelConfig
  body: TensorMap
  head: TensorMap
  examples: Example[]
  maxLen: number
  batchSize?: number
  tokenizer?: Tokenizer
  signal?: AbortSignal
}

export interface EvaluateResult {
  accuracy: number
  loss: number
  n: number
}

export class AbortError extends Error {
  override name = 'AbortError'
  readonly code = 'ABORT_ERR'
  constructor(message = 'the operation was aborted', options?: { cause?: unknown }) {
    super(message, options)
  }
}

export async function fineTune(opts: FineTuneOptions): Promise<FineTuneResult> {
  const { config, examples, numLabels, steps, batchSize, lr } = opts
  const started = performance.now()
  checkAbort(opts.signal)
  assertPositiveInt('steps', steps, true)
  assertPositiveInt('batchSize', batchSize)
  if (!(lr >= 0) || !Number.isFinite(lr)) throw new Error(`lr must be a finite number >= 0, got ${lr}`)
  checkExamples(examples, numLabels)
  const tokenizer = opts.tokenizer ?? new HashedWordTokenizer(config.vocab_size)
  checkMaxLen(config, opts.maxLen)

  const state = new TrainState(config, opts.body, opts.head, numLabels, opts.seed)
  try {
    const order = new BatchSampler(examples.length, opts.seed)
    let lossSum = 0
    let done = 0
    for (let step = 0; step < steps; step++) {
      // Yield to the event loop so timers, network and abort signals are served between steps.
      await new Promise<void>((resolve) => setImmediate(resolve))
      checkAbort(opts.signal)
      const idx = order.next(batchSize)
      const batch = tokenizer.encodeBatch(
        idx.map((i) => examples[i].text),
        opts.maxLen,
      )
      const labels = Int32Array.from(idx, (i) => examples[i].label)
      const stepLr = opts.lrSchedule === 'constant' ? lr : (lr * (steps - step)) / steps
      const loss = state.step(batch, labels, stepLr)
      if (!Number.isFinite(loss)) throw new Error(`training diverged: loss ${loss} at step ${step + 1}`)
      lossSum += loss
      done++
      opts.onStep?.(step + 1, steps, loss)
    }
    const { body, head } = state.export()
    return {
      body,
      head,
      meanLoss: done > 0 ? lossSum / done : NaN,
      examplesSeen: done * batchSize,
      seconds: (performance.now() - started) / 1000,
    }
  } finally {
    state.dispose()
  }
}

export async function evaluate(opts: EvaluateOptions): Promise<EvaluateResult> {
  const { config, examples } = opts
  const batchSize = opts.batchSize ?? 64
  assertPositiveInt('batchSize', batchSize)
  assertSupportedConfig(config)
  checkMaxLen(config, opts.maxLen)
  const numLabels = headLabels(opts.head)
  checkExamples(examples, numLabels)
  checkLayout(config, opts.body, opts.head, numLabels)
  const tokenizer = opts.tokenizer ?? new HashedWordTokenizer(config.vocab_size)
  const weights: Weights = new Map()
  try {
    for (const src of [opts.body, opts.head]) {
      for (const [name, t] of src) weights.set(name, tf.tensor(t.data, t.shape, 'float32'))
    }
    let correct = 0
    let lossSum = 0
    for (let start = 0; start < examples.length; start += batchSize) {
      await new Promise<void>((resolve) => setImmediate(resolve))
      checkAbort(opts.signal, 'evaluation')
      const part = examples.slice(start, start + batchSize)
      const batch = tokenizer.encodeBatch(
        part.map((e) => e.text),
        opts.maxLen,
      )
      const logits = tf.tidy(() => {
        const { lastHiddenState } = encoderForward(config, weights, batch, { training: false, pool: false })
        return classifierForward(config, weights, lastHiddenState, { training: false })
      })
      const values = await logits.data()
      logits.dispose()
      for (let b = 0; b < part.length; b++) {
        const row = values.subarray(b * numLabels, (b + 1) * numLabels)
        let best = 0
        let max = -Infinity
        for (let j = 0; j < numLabels; j++) if (row[j] > max) [max, best] = [row[j], j]
        if (best === part[b].label) correct++
        // Cross-entropy in float64 from the logits: log-sum-exp, stabilized by the max.
        let sum = 0
        for (let j = 0; j < numLabels; j++) sum += Math.exp(row[j] - max)
        lossSum += Math.log(sum) + max - row[part[b].label]
      }
    }
    const n = examples.length
    return { accuracy: correct / n, loss: lossSum / n, n }
  } finally {
    for (const t of weights.values()) t.dispose()
  }
}

/**
 * The tf side of a fine-tuning run: variables, optimizer state and one training step. Exposed
 * for benchmarks (stepbench.ts), which time `step` without data handling.
 */
export class TrainState {
  private readonly vars = new Map<string, tf.Variable>()
  private readonly trainable: tf.Variable[] = []
  private readonly byVarName = new Map<string, string>()
  private readonly bodyNames: string[]
  private readonly headNames: string[]
  private readonly adam: Adam
  private readonly dropout: SeededDropout
  private disposed = false

  constructor(
    private readonly config: ModelConfig,
    body: TensorMap,
    head: TensorMap,
    private readonly numLabels: number,
    seed: number | string,
  ) {
    assertSupportedConfig(config)
    checkLayout(config, body, head, numLabels)
    ensureGradients()
    this.bodyNames = sortedNames(body)
    this.headNames = sortedNames(head)
    try {
      for (const src of [body, head]) {
        for (const name of sortedNames(src)) {
          const t = src.get(name)!
          const init = tf.tensor(t.data, t.shape, 'float32')
          // Unnamed variables: tfjs names must be unique per process, and several runs may coexist.
          const v = tf.variable(init, true)
          init.dispose()
          this.vars.set(name, v)
          this.byVarName.set(v.name, name)
          // The pooler is not on the classification path (as in RobertaForSequenceClassification): it stays as given.
          if (!name.startsWith('pooler.')) this.trainable.push(v)
        }
      }
      this.adam = new Adam(this.trainable)
    } catch (err) {
      for (const v of this.vars.values()) v.dispose()
      throw err
    }
    this.dropout = new SeededDropout('train', seed)
  }

  /** One optimizer step on a batch; returns the batch's mean loss. */
  step(batch: EncodedBatch, labels: Int32Array, lr: number): number {
    if (this.disposed) throw new Error('TrainState used after dispose')
    if (labels.length !== batch.batch) throw new Error(`${labels.length} labels for a batch of ${batch.batch}`)
    const loss = tf.tidy(() => {
      const onehot = tf.oneHot(tf.tensor1d(labels, 'int32'), this.numLabels)
      const { value, grads } = tf.variableGrads(() => {
        const fw = { training: true, dropout: this.dropout, pool: false }
        const { lastHiddenState } = encoderForward(this.config, this.vars, batch, fw)
        const logits = classifierForward(this.config, this.vars, lastHiddenState, fw)
        return tf.neg(tf.mean(tf.sum(tf.mul(onehot, tf.logSoftmax(logits)), -1))) as tf.Scalar
      }, this.trainable)
      this.adam.apply(grads, lr)
      return value
    })
    const v = loss.dataSync()[0]
    loss.dispose()
    return v
  }

  /** Copies of the current weights, split back into the caller's body and head names. */
  export(): { body: TensorMap; head: TensorMap } {
    const read = (names: string[]): TensorMap => {
      const out: TensorMap = new Map()
      for (const name of names) {
        const v = this.vars.get(name)!
        out.set(name, { shape: [...v.shape], data: new Float32Array(v.dataSync() as Float32Array) })
      }
      return out
    }
    return { body: read(this.bodyNames), head: read(this.headNames) }
  }

  dispose(): void {
    if (this.disposed) return
    this.disposed = true
    this.adam.dispose()
    for (const v of this.vars.values()) v.dispose()
    this.vars.clear()
  }
}

/** Seeded sampling without replacement; reshuffles at each epoch. */
class BatchSampler {
  private readonly rng: Rng
  private readonly order: Int32Array
  private pos: number

  constructor(n: number, seed: number | string) {
    this.rng = Rng.fromSeed('coldfusiond-batches-v1', seed)
    this.order = Int32Array.from({ length: n }, (_, i) => i)
    this.pos = n
  }

  next(size: number): number[] {
    const out: number[] = []
    while (out.length < size) {
      if (this.pos >= this.order.length) {
        this.rng.shuffle(this.order)
        this.pos = 0
      }
      out.push(this.order[this.pos++])
    }
    return out
  }
}

function checkLayout(config: ModelConfig, body: TensorMap, head: TensorMap, numLabels: number): void {
  const want = bodyTensorShapes(config)
  for (const [name, shape] of want) {
    const t = body.get(name)
    if (!t) {
      if (name.startsWith('pooler.')) continue // optional: checkpoints of sequence classifiers have none
      throw new Error(`body is missing tensor ${name}`)
    }
    if (!sameShape(t.shape, shape)) throw new Error(`body tensor ${name} has shape [${t.shape}], config expects [${shape}]`)
  }
  for (const [name, shape] of headTensorShapes(config, numLabels)) {
    const t = head.get(name)
    if (!t) throw new Error(`head is missing tensor ${name}`)
    if (!sameShape(t.shape, shape)) throw new Error(`head tensor ${name} has shape [${t.shape}], expected [${shape}] for ${numLabels} labels`)
  }
  for (const name of head.keys()) if (body.has(name)) throw new Error(`tensor ${name} is in both body and head`)
}

function headLabels(head: TensorMap): number {
  const t = head.get('classifier.out_proj.weight')
  if (!t || t.shape.length !== 2) throw new Error('head is missing classifier.out_proj.weight [numLabels, hidden]')
  return t.shape[0]
}

function sameShape(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i])
}

function checkExamples(examples: Example[], numLabels: number): void {
  if (examples.length === 0) throw new Error('no examples')
  assertPositiveInt('numLabels', numLabels)
  for (let i = 0; i < examples.length; i++) {
    const l = examples[i].label
    if (!Number.isInteger(l) || l < 0 || l >= numLabels) throw new Error(`example ${i}: label ${l} outside [0, ${numLabels})`)
    if (typeof examples[i].text !== 'string') throw new Error(`example ${i}: text is not a string`)
  }
}

function checkMaxLen(config: ModelConfig, maxLen: number): void {
  const limit = maxSequenceLength(config)
  if (!Number.isInteger(maxLen) || maxLen < 2 || maxLen > limit) {
    throw new Error(`maxLen must be an integer in [2, ${limit}] for this model (max_position_embeddings ${config.max_position_embeddings}), got ${maxLen}`)
  }
}

function assertPositiveInt(what: string, v: number, allowZero = false): void {
  if (!Number.isInteger(v) || v < (allowZero ? 0 : 1)) throw new Error(`${what} must be an integer >= ${allowZero ? 0 : 1}, got ${v}`)
}

function checkAbort(signal?: AbortSignal, what = 'fine-tuning'): void {
  if (signal?.aborted) throw new AbortError(`${what} aborted`, { cause: signal.reason })
}
