import * as tf from '@tensorflow/tfjs-core'
import type { ModelConfig } from '../model/config.js'
import { classifierForward, encoderForward, SeededDropout } from '../model/encoder.js'
import { ensureGradients } from '../model/gradients.js'
import type { TensorMap } from '../model/tensors.js'
import type { EncodedBatch } from '../model/tokenizer.js'

/**
 * The reference for the daemon's training loop (fineTune): the same model and forward pass,
 * trained the plainest TensorFlow.js way: variables, tf.train.adam, optimizer.minimize over
 * batches tokenized in advance, no per-step readback, no yielding. Returns the wall seconds of
 * `steps` steps including setup and the final weight readback, as fineTune's seconds do.
 */
export function bareLoopSeconds(config: ModelConfig, body: TensorMap, head: TensorMap, batches: { data: EncodedBatch; labels: Int32Array }[], numLabels: number, steps: number, lr: number): number {
  ensureGradients()
  const t0 = performance.now()
  const vars = new Map<string, tf.Variable>()
  for (const src of [body, head]) for (const [name, t] of src) vars.set(name, tf.variable(tf.tensor(t.data, t.shape, 'float32'), true))
  const trainable = [...vars].filter(([name]) => !name.startsWith('pooler.')).map(([, v]) => v)
  const opt = tf.train.adam(lr)
  const dropout = new SeededDropout('bare', 'bench')
  try {
    for (let step = 0; step < steps; step++) {
      const { data, labels } = batches[step % batches.length]
      tf.tidy(() => {
        const onehot = tf.oneHot(tf.tensor1d(labels, 'int32'), numLabels)
        opt.minimize(() => {
          const fw = { training: true, dropout, pool: false }
          const { lastHiddenState } = encoderForward(config, vars, data, fw)
          const logits = classifierForward(config, vars, lastHiddenState, fw)
          return tf.neg(tf.mean(tf.sum(tf.mul(onehot, tf.logSoftmax(logits)), -1))) as tf.Scalar
        }, false, trainable)
      })
    }
    for (const v of vars.values()) v.dataSync()
    return (performance.now() - t0) / 1000
  } finally {
    opt.dispose()
    for (const v of vars.values()) v.dispose()
  }
}
