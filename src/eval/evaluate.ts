import * as tf from '@tensorflow/tfjs-core'
import type { ModelConfig } from '../model/config.js'
import { classifierForward, encoderForward, SeededDropout, type Weights } from '../model/encoder.js'
import { ensureGradients } from '../model/gradients.js'
import { initHead } from '../model/init.js'
import { Rng } from '../model/prng.js'
import { sortedNames, type TensorMap } from '../model/tensors.js'
import type { Tokenizer } from '../model/tokenizer.js'
import { Adam } from '../train/adam.js'
import { evaluate, fineTune, type Example } from '../train/trainer.js'

/**
 * The paper's evaluation of a base on a task: a fresh classification head, trained with the
 * whole body (fine-tuning) or on the frozen body (linear probe, the paper's ColD-Frozen), then
 * accuracy on the test set. Same inputs and seed, same result on one backend.
 */

export interface EvalTaskOptions {
  config: ModelConfig
  body: TensorMap
  tokenizer: Tokenizer
  maxLen: number
  train: Example[]
  test: Example[]
  numLabels: number
  epochs: number
  lr: number
  batchSize: number
  seed: string | number
  /** Freeze the body and train only the head. */
  probe: boolean
  signal?: AbortSignal
}

export interface EvalTaskResult {
  accuracy: number
  loss: number
  /** Training examples used. */
  examples: number
  testExamples: number
  steps: number
  seconds: number
}

export const EVAL_DEFAULTS = { epochs: 10, batchSize: 16, lr: 2e-3, probeLr: 1e-2 }

export async function evalTask(o: EvalTaskOptions): Promise<EvalTaskResult> {
  const started = performance.now()
  if (!Number.isInteger(o.epochs) || o.epochs < 1) throw new RangeError(`epochs must be an integer >= 1, got ${o.epochs}`)
  const steps = Math.ceil(o.train.length / o.batchSize) * o.epochs
  const head = initHead(o.config, o.numLabels, `eval-head:${o.seed}`)
  let res: { accuracy: number; loss: number }
  if (o.probe) {
    res = await probe(o, head, steps)
  } else {
    const ft = await fineTune({
      config: o.config, body: o.body, head, examples: o.train, numLabels: o.numLabels, steps, batchSize: o.batchSize,
      lr: o.lr, lrSchedule: 'linear', seed: `eval:${o.seed}`, maxLen: o.maxLen, tokenizer: o.tokenizer, signal: o.signal,
    })
    res = await evaluate({ config: o.config, body: ft.body, head: ft.head, examples: o.test, maxLen: o.maxLen, tokenizer: o.tokenizer, signal: o.signal })
  }
  return { ...res, examples: o.train.length, testExamples: o.test.length, steps, seconds: (performance.now() - started) / 1000 }
}

/** The <s> token's last hidden state for every text, from the frozen body: [n, hidden]. */
export async function extractFeatures(config: ModelConfig, body: TensorMap, tokenizer: Tokenizer, texts: string[], maxLen: number, batchSize = 128): Promise<Float32Array> {
  const H = config.hidden_size
  const out = new Float32Array(texts.length * H)
  const weights: Weights = new Map()
  try {
    for (const [name, t] of body) weights.set(name, tf.tensor(t.data, t.shape, 'float32'))
    for (let start = 0; start < texts.length; start += batchSize) {
      await new Promise<void>((r) => setImmediate(r))
      const batch = tokenizer.encodeBatch(texts.slice(start, start + batchSize), maxLen)
      const cls = tf.tidy(() => {
        const { lastHiddenState } = encoderForward(config, weights, batch, { training: false, pool: false })
        return tf.squeeze(tf.slice(lastHiddenState, [0, 0, 0], [-1, 1, -1]), [1])
      })
      out.set(await cls.data(), start * H)
      cls.dispose()
    }
  } finally {
    for (const t of weights.values()) t.dispose()
  }
  return out
}

/**
 * Linear probe: the body runs once (eval mode) to give each example's <s> features, then the
 * standard RoBERTa classification head (dropout, dense, tanh, dropout, out_proj) trains on
 * them with Adam, seeded batch order and dropout, linearly decaying lr.
 */
async function probe(o: EvalTaskOptions, head: TensorMap, steps: number): Promise<{ accuracy: number; loss: number }> {
  const H = o.config.hidden_size
  const trainF = await extractFeatures(o.config, o.body, o.tokenizer, o.train.map((e) => e.text), o.maxLen)
  const testF = await extractFeatures(o.config, o.body, o.tokenizer, o.test.map((e) => e.text), o.maxLen)
  ensureGradients()
  const vars = new Map<string, tf.Variable>()
  for (const name of sortedNames(head)) {
    const t = head.get(name)!
    vars.set(name, tf.variable(tf.tensor(t.data, t.shape, 'float32'), true))
  }
  const trainable = [...vars.values()]
  const adam = new Adam(trainable)
  const dropout = new SeededDropout('probe', String(o.seed))
  const rng = Rng.fromSeed('coldfusiond-probe-batches-v1', String(o.seed))
  const order = Int32Array.from({ length: o.train.length }, (_, i) => i)
  let pos = order.length
  const trainLabels = Int32Array.from(o.train, (e) => e.label)
  try {
    for (let step = 0; step < steps; step++) {
      const idx: number[] = []
      while (idx.length < o.batchSize) {
        if (pos >= order.length) {
          shuffleInt(rng, order)
          pos = 0
        }
        idx.push(order[pos++])
      }
      const x = new Float32Array(idx.length * H)
      idx.forEach((i, b) => x.set(trainF.subarray(i * H, (i + 1) * H), b * H))
      const lr = (o.lr * (steps - step)) / steps
      tf.tidy(() => {
        const feats = tf.tensor3d(x, [idx.length, 1, H])
        const onehot = tf.oneHot(tf.tensor1d(Int32Array.from(idx, (i) => trainLabels[i]), 'int32'), o.numLabels)
        const { grads } = tf.variableGrads(() => {
          const logits = classifierForward(o.config, vars as Weights, feats, { training: true, dropout })
          return tf.neg(tf.mean(tf.sum(tf.mul(onehot, tf.logSoftmax(logits)), -1))) as tf.Scalar
        }, trainable)
        adam.apply(grads, lr)
      })
      if (step % 50 === 49) await new Promise<void>((r) => setImmediate(r))
    }
    const logits = tf.tidy(() => classifierForward(o.config, vars as Weights, tf.tensor3d(testF, [o.test.length, 1, H]), { training: false }))
    const values = await logits.data()
    logits.dispose()
    let correct = 0
    let loss = 0
    for (let b = 0; b < o.test.length; b++) {
      const row = values.subarray(b * o.numLabels, (b + 1) * o.numLabels)
      let best = 0
      for (let j = 1; j < o.numLabels; j++) if (row[j] > row[best]) best = j
      if (best === o.test[b].label) correct++
      let sum = 0
      for (let j = 0; j < o.numLabels; j++) sum += Math.exp(row[j] - row[best])
      loss += Math.log(sum) + row[best] - row[o.test[b].label]
    }
    return { accuracy: correct / o.test.length, loss: loss / o.test.length }
  } finally {
    adam.dispose()
    for (const v of vars.values()) v.dispose()
  }
}

function shuffleInt(rng: Rng, a: Int32Array): void {
  rng.shuffle(a)
}
