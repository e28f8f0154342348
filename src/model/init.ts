import type { ModelConfig } from './config.js'
import { Rng } from './prng.js'
import { numel, type TensorMap } from './tensors.js'

/**
 * Initial weights of the shared body and of a task head, with the Hugging Face RobertaModel /
 * RobertaClassificationHead names and shapes, and RoBERTa's init (normal(0, initializer_range)
 * for linear and embedding weights, zero biases, LayerNorm 1/0, zero padding rows).
 * Every node of a swarm must derive the bit-identical round-0 base from (config, seed), so the
 * values come from the integer-only Rng, one independent stream per (seed, tensor name).
 */

type Kind = 'normal' | 'zeros' | 'ones'

interface Spec {
  shape: number[]
  kind: Kind
  /** Rows set to zero after sampling (embedding padding_idx). */
  zeroRows?: number[]
}

/** The names and shapes of the body tensors (RobertaModel with pooler). */
export function bodyTensorShapes(config: ModelConfig): Map<string, number[]> {
  return new Map([...bodySpecs(config)].map(([n, s]) => [n, s.shape]))
}

/** The names and shapes of a RobertaClassificationHead with numLabels outputs. */
export function headTensorShapes(config: ModelConfig, numLabels: number): Map<string, number[]> {
  return new Map([...headSpecs(config, numLabels)].map(([n, s]) => [n, s.shape]))
}

export function initBody(config: ModelConfig, seed: string | number): TensorMap {
  return materialize(bodySpecs(config), config.initializer_range, seed)
}

export function initHead(config: ModelConfig, numLabels: number, seed: string | number): TensorMap {
  return materialize(headSpecs(config, numLabels), config.initializer_range, seed)
}

function bodySpecs(c: ModelConfig): Map<string, Spec> {
  const H = c.hidden_size
  const I = c.intermediate_size
  const specs = new Map<string, Spec>()
  const linear = (prefix: string, out: number, inp: number): void => {
    specs.set(`${prefix}.weight`, { shape: [out, inp], kind: 'normal' })
    specs.set(`${prefix}.bias`, { shape: [out], kind: 'zeros' })
  }
  const layerNorm = (prefix: string): void => {
    specs.set(`${prefix}.weight`, { shape: [H], kind: 'ones' })
    specs.set(`${prefix}.bias`, { shape: [H], kind: 'zeros' })
  }
  specs.set('embeddings.word_embeddings.weight', { shape: [c.vocab_size, H], kind: 'normal', zeroRows: padRow(c.pad_token_id, c.vocab_size) })
  specs.set('embeddings.position_embeddings.weight', {
    shape: [c.max_position_embeddings, H],
    kind: 'normal',
    zeroRows: padRow(c.pad_token_id, c.max_position_embeddings),
  })
  specs.set('embeddings.token_type_embeddings.weight', { shape: [c.type_vocab_size, H], kind: 'normal' })
  layerNorm('embeddings.LayerNorm')
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const p = `encoder.layer.${i}`
    linear(`${p}.attention.self.query`, H, H)
    linear(`${p}.attention.self.key`, H, H)
    linear(`${p}.attention.self.value`, H, H)
    linear(`${p}.attention.output.dense`, H, H)
    layerNorm(`${p}.attention.output.LayerNorm`)
    linear(`${p}.intermediate.dense`, I, H)
    linear(`${p}.output.dense`, H, I)
    layerNorm(`${p}.output.LayerNorm`)
  }
  linear('pooler.dense', H, H)
  return specs
}

function headSpecs(c: ModelConfig, numLabels: number): Map<string, Spec> {
  if (!Number.isInteger(numLabels) || numLabels < 1) throw new Error(`numLabels must be a positive integer, got ${numLabels}`)
  const H = c.hidden_size
  return new Map<string, Spec>([
    ['classifier.dense.weight', { shape: [H, H], kind: 'normal' }],
    ['classifier.dense.bias', { shape: [H], kind: 'zeros' }],
    ['classifier.out_proj.weight', { shape: [numLabels, H], kind: 'normal' }],
    ['classifier.out_proj.bias', { shape: [numLabels], kind: 'zeros' }],
  ])
}

function padRow(pad: number, rows: number): number[] {
  return pad < rows ? [pad] : []
}

function materialize(specs: Map<string, Spec>, std: number, seed: string | number): TensorMap {
  const out: TensorMap = new Map()
  for (const name of [...specs.keys()].sort()) {
    const spec = specs.get(name)!
    const data = new Float32Array(numel(spec.shape))
    if (spec.kind === 'ones') data.fill(1)
    else if (spec.kind === 'normal') {
      const rng = Rng.fromSeed('coldfusiond-init-v1', seed, name)
      // float64 product, rounded once to float32 on store: identical on every engine.
      for (let i = 0; i < data.length; i++) data[i] = rng.normalApprox() * std
      const width = spec.shape[spec.shape.length - 1]
      for (const r of spec.zeroRows ?? []) data.fill(0, r * width, (r + 1) * width)
    }
    out.set(name, { shape: [...spec.shape], data })
  }
  return out
}
