import { ModelConfigSchema, type ModelConfig } from '../model/config.js'
import { bodyTensorShapes } from '../model/init.js'
import { numel, type TensorMap } from '../model/tensors.js'

/** Synthetic bodies and deltas at any size, for throughput benchmarks (no training involved). */

/** A roberta-shaped layout (names and shapes of a real body) scaled by hidden size and depth. */
export function robertaConfig(hidden: number, layers: number): ModelConfig {
  return ModelConfigSchema.parse({
    model_type: 'roberta', vocab_size: 50265, hidden_size: hidden, num_hidden_layers: layers, num_attention_heads: hidden / 64,
    intermediate_size: 4 * hidden, max_position_embeddings: 514, type_vocab_size: 1,
  })
}

/** Cheap deterministic noise (xorshift32, sum of two uniforms): delta-like values, fast to make. */
export function noiseTensors(config: ModelConfig, seed: number, scale: number): TensorMap {
  let s = (seed * 2654435761) >>> 0 || 1
  const out: TensorMap = new Map()
  for (const [name, shape] of bodyTensorShapes(config)) {
    const data = new Float32Array(numel(shape))
    for (let i = 0; i < data.length; i++) {
      s ^= s << 13
      s ^= s >>> 17
      s ^= s << 5
      const a = s >>> 0
      s ^= s << 13
      s ^= s >>> 17
      s ^= s << 5
      data[i] = ((a + (s >>> 0)) / 4294967296 - 1) * scale
    }
    out.set(name, { shape, data })
  }
  return out
}

