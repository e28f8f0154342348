import * as tf from '@tensorflow/tfjs-core'
import type { ModelConfig } from '../config.js'
import { encoderForward, type Weights } from '../encoder.js'
import type { TensorMap } from '../tensors.js'
import type { EncodedBatch } from '../tokenizer.js'

/** The encoder's outputs for a batch, as plain arrays (RobertaModel/BertModel outputs, eval mode). */
export interface Features {
  batch: number
  seqLen: number
  hidden: number
  /** [batch * seqLen * hidden], row-major. */
  lastHiddenState: Float32Array
  /** [batch * hidden], or null when the body has no pooler. */
  poolerOutput: Float32Array | null
}

export async function computeFeatures(config: ModelConfig, body: TensorMap, batch: EncodedBatch): Promise<Features> {
  const weights: Weights = new Map()
  try {
    for (const [name, t] of body) weights.set(name, tf.tensor(t.data, t.shape, 'float32'))
    const out = tf.tidy(() => {
      const { lastHiddenState, pooled } = encoderForward(config, weights, batch, { training: false })
      return pooled ? [lastHiddenState, pooled] : [lastHiddenState]
    })
    try {
      const [h, p] = await Promise.all(out.map((t) => t.data() as Promise<Float32Array>))
      return { batch: batch.batch, seqLen: batch.seqLen, hidden: config.hidden_size, lastHiddenState: h, poolerOutput: p ?? null }
    } finally {
      for (const t of out) t.dispose()
    }
  } finally {
    for (const t of weights.values()) t.dispose()
  }
}

/** Rows of a flat [rows * width] array. */
export function rows(data: Float32Array, width: number): number[][] {
  const out: number[][] = []
  for (let i = 0; i < data.length; i += width) out.push(Array.from(data.subarray(i, i + width)))
  return out
}
