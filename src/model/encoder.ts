import * as tf from '@tensorflow/tfjs-core'
import { HIDDEN_ACTS, type ModelConfig } from './config.js'
import { sumRows } from './gradients.js'
import { Rng } from './prng.js'
import type { EncodedBatch } from './tokenizer.js'

/**
 * The RoBERTa encoder and classification head in TensorFlow.js, reading weights by their
 * Hugging Face names (linear weights [out, in]), so that checkpoints move to and from PyTorch
 * unchanged. Activations are kept 2-D [batch*seq, hidden] between layers: fewer reshapes, and
 * every linear layer is one plain matMul with a transposed weight, which the wasm backend runs
 * fast once its BatchMatMul is patched (see backend.ts).
 * All functions create tensors without tidying: call them inside tf.tidy (or tf.variableGrads).
 */

export type Weights = Map<string, tf.Tensor>

/** Source of dropout keep-masks; seeded so a training run repeats exactly on one backend. */
export interface DropoutSource {
  /** A tensor of the given shape holding 0 (dropped) or 1/(1-rate) (kept). */
  mask(shape: number[], rate: number): tf.Tensor
}

export class SeededDropout implements DropoutSource {
  private readonly rng: Rng
  constructor(...seed: (string | number)[]) {
    this.rng = Rng.fromSeed('coldfusiond-dropout-v1', ...seed)
  }

  mask(shape: number[], rate: number): tf.Tensor {
    const n = shape.reduce((p, d) => p * d, 1)
    const m = new Float32Array(n)
    const keep = 1 / (1 - rate)
    // Compare 32-bit integers: a drop threshold of rate * 2^32.
    const threshold = Math.floor(rate * 4294967296)
    for (let i = 0; i < n; i++) m[i] = this.rng.nextU32() < threshold ? 0 : keep
    return tf.tensor(m, shape, 'float32')
  }
}

export interface ForwardOptions {
  /** Apply dropout (requires `dropout`). */
  training?: boolean
  dropout?: DropoutSource
  /** Compute the pooler output (RobertaForSequenceClassification does not use it). Default true when the pooler weights exist. */
  pool?: boolean
}

export interface EncoderOutput {
  /** [batch, seqLen, hidden] */
  lastHiddenState: tf.Tensor3D
  /** [batch, hidden], or null when not computed. */
  pooled: tf.Tensor2D | null
}

/** Throws a clear error for configurations this implementation does not compute. */
export function assertSupportedConfig(config: ModelConfig): void {
  const c = config as ModelConfig & Record<string, unknown>
  const bad = (msg: string): never => {
    throw new Error(`unsupported model config: ${msg}`)
  }
  if (c.model_type !== 'roberta' && c.model_type !== 'bert') bad(`model_type ${String(c.model_type)} (roberta or bert)`)
  if (!(HIDDEN_ACTS as readonly string[]).includes(c.hidden_act)) bad(`hidden_act ${String(c.hidden_act)} (${HIDDEN_ACTS.join(', ')})`)
  if (c.position_embedding_type !== undefined && c.position_embedding_type !== 'absolute') {
    bad(`position_embedding_type ${String(c.position_embedding_type)} (only absolute)`)
  }
  if (c.is_decoder === true) bad('is_decoder true (encoder only)')
  if (c.add_cross_attention === true) bad('add_cross_attention true (encoder only)')
  if (c.hidden_size % c.num_attention_heads !== 0) bad(`hidden_size ${c.hidden_size} is not a multiple of num_attention_heads ${c.num_attention_heads}`)
  if (c.pad_token_id >= c.vocab_size) bad(`pad_token_id ${c.pad_token_id} outside the vocabulary (${c.vocab_size})`)
  const cd = c.classifier_dropout
  if (cd !== undefined && cd !== null && (typeof cd !== 'number' || cd < 0 || cd >= 1)) bad(`classifier_dropout ${String(cd)}`)
  if (c.hidden_dropout_prob >= 1 || c.attention_probs_dropout_prob >= 1) bad('dropout probabilities must be < 1')
}

/** Longest sequence (including <s> and </s>) the position embeddings cover. */
export function maxSequenceLength(config: ModelConfig): number {
  if (config.model_type === 'bert') return config.max_position_embeddings
  return config.max_position_embeddings - config.pad_token_id - 1
}

/** Position ids of a batch: RoBERTa counts from the pad id (see positionIds), BERT from 0. */
export function positionIdsFor(config: ModelConfig, inputIds: Int32Array, batch: number, seqLen: number): Int32Array {
  if (config.model_type !== 'bert') return positionIds(inputIds, batch, seqLen, config.pad_token_id)
  const out = new Int32Array(batch * seqLen)
  for (let i = 0; i < out.length; i++) out[i] = i % seqLen
  return out
}

/**
 * RoBERTa position ids: padding_idx + 1 + (number of non-pad tokens up to and including this
 * one); pad tokens get padding_idx. Computed in JS from the ids (HF create_position_ids_from_input_ids).
 */
export function positionIds(inputIds: Int32Array, batch: number, seqLen: number, padId: number): Int32Array {
  const out = new Int32Array(batch * seqLen)
  for (let b = 0; b < batch; b++) {
    let count = 0
    for (let t = 0; t < seqLen; t++) {
      const i = b * seqLen + t
      if (inputIds[i] !== padId) out[i] = padId + ++count
      else out[i] = padId
    }
  }
  return out
}

function get(w: Weights, name: string): tf.Tensor {
  const t = w.get(name)
  if (!t) throw new Error(`missing weight ${name}`)
  return t
}

/** y = x W^T + b for x [N, in], W [out, in]. */
function linear(x: tf.Tensor2D, w: Weights, prefix: string): tf.Tensor2D {
  const y = tf.matMul(x, get(w, `${prefix}.weight`) as tf.Tensor2D, false, true)
  return tf.add(y, get(w, `${prefix}.bias`))
}

function layerNorm(x: tf.Tensor2D, w: Weights, prefix: string, eps: number): tf.Tensor2D {
  return layerNormOp(eps)(x, get(w, `${prefix}.weight`), get(w, `${prefix}.bias`)) as tf.Tensor2D
}

const layerNormOps = new Map<number, (x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.Tensor>()

/**
 * LayerNorm over the last axis of [N, H] with its analytic gradient: about half the kernels of
 * autodiff through mean/sub/square/rsqrt, and each is a pass over the activations.
 */
function layerNormOp(eps: number): (x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.Tensor {
  let op = layerNormOps.get(eps)
  if (!op) {
    op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
      const [x, g, b] = args as tf.Tensor[]
      const save = args[3] as tf.GradSaveFunc
      const xc = tf.sub(x, tf.mean(x, -1, true))
      const rstd = tf.rsqrt(tf.add(tf.mean(tf.square(xc), -1, true), eps))
      const xhat = tf.mul(xc, rstd)
      save([xhat, rstd, g])
      return {
        value: tf.add(tf.mul(xhat, g), b),
        gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
          const [xh, rs, gamma] = saved
          const d = dy as tf.Tensor2D
          const dxhat = tf.mul(d, gamma)
          // dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
          const m1 = tf.mean(dxhat, -1, true)
          const m2 = tf.mean(tf.mul(dxhat, xh), -1, true)
          const dx = tf.mul(tf.sub(tf.sub(dxhat, m1), tf.mul(xh, m2)), rs)
          return [dx, sumRows(tf.mul(d, xh) as tf.Tensor2D), sumRows(d)]
        },
      }
    }) as unknown as (x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.Tensor
    layerNormOps.set(eps, op)
  }
  return op
}

function activation(x: tf.Tensor2D, act: string): tf.Tensor2D {
  switch (act) {
    case 'gelu': // exact: 0.5 x (1 + erf(x / sqrt 2))
    case 'gelu_python':
      return tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1))
    case 'gelu_new':
    case 'gelu_pytorch_tanh': {
      // tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
      const inner = tf.mul(tf.add(x, tf.mul(tf.mul(tf.square(x), x), 0.044715)), Math.sqrt(2 / Math.PI))
      return tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(inner), 1))
    }
    case 'relu':
      return tf.relu(x)
    default:
      throw new Error(`unsupported model config: hidden_act ${act}`)
  }
}

function dropout<T extends tf.Tensor>(x: T, rate: number, opts: ForwardOptions): T {
  if (!opts.training || rate <= 0) return x
  if (!opts.dropout) throw new Error('training forward pass needs a dropout source')
  return tf.mul(x, opts.dropout.mask(x.shape, rate))
}

export function encoderForward(config: ModelConfig, w: Weights, batch: EncodedBatch, opts: ForwardOptions = {}): EncoderOutput {
  assertSupportedConfig(config)
  const B = batch.batch
  const T = batch.seqLen
  const H = config.hidden_size
  const nh = config.num_attention_heads
  const dh = H / nh
  const N = B * T
  if (batch.inputIds.length !== N || batch.attentionMask.length !== N) {
    throw new Error(`batch arrays hold ${batch.inputIds.length}/${batch.attentionMask.length} ids, expected ${B}x${T}`)
  }
  if (T > maxSequenceLength(config)) {
    throw new Error(`sequence length ${T} exceeds the model's ${maxSequenceLength(config)} (max_position_embeddings ${config.max_position_embeddings})`)
  }
  for (const id of batch.inputIds) {
    if (id < 0 || id >= config.vocab_size) throw new Error(`token id ${id} outside the vocabulary (${config.vocab_size})`)
  }
  const eps = config.layer_norm_eps

  // Embeddings: word + position + token type 0, LayerNorm, dropout.
  const ids = tf.tensor1d(batch.inputIds, 'int32')
  const pos = tf.tensor1d(positionIdsFor(config, batch.inputIds, B, T), 'int32')
  const wordE = tf.gather(get(w, 'embeddings.word_embeddings.weight'), ids) as tf.Tensor2D
  const posE = tf.gather(get(w, 'embeddings.position_embeddings.weight'), pos) as tf.Tensor2D
  const typeE = tf.slice(get(w, 'embeddings.token_type_embeddings.weight'), [0, 0], [1, H])
  let x = tf.add(tf.add(wordE, posE), typeE) as tf.Tensor2D
  x = dropout(layerNorm(x, w, 'embeddings.LayerNorm', eps), config.hidden_dropout_prob, opts)

  // Additive key mask [B, 1, 1, T]: 0 for tokens, a large negative for padding.
  const maskAdd = new Float32Array(N)
  for (let i = 0; i < N; i++) maskAdd[i] = batch.attentionMask[i] ? 0 : -1e9
  const keyMask = tf.tensor4d(maskAdd, [B, 1, 1, T])
  const scale = 1 / Math.sqrt(dh)

  for (let l = 0; l < config.num_hidden_layers; l++) {
    const p = `encoder.layer.${l}`
    // Scale q before the product: [N, H] is no larger than the scores.
    const q = tf.transpose(tf.reshape(tf.mul(linear(x, w, `${p}.attention.self.query`), scale), [B, T, nh, dh]), [0, 2, 1, 3])
    // k goes straight to [B, nh, dh, T], so that q k^T is a plain (untransposed) product.
    const k = tf.transpose(tf.reshape(linear(x, w, `${p}.attention.self.key`), [B, T, nh, dh]), [0, 2, 3, 1])
    const v = tf.transpose(tf.reshape(linear(x, w, `${p}.attention.self.value`), [B, T, nh, dh]), [0, 2, 1, 3])
    let probs = tf.softmax(tf.add(tf.matMul(q, k), keyMask))
    probs = dropout(probs, config.attention_probs_dropout_prob, opts)
    const ctx = tf.reshape(tf.transpose(tf.matMul(probs, v), [0, 2, 1, 3]), [N, H]) as tf.Tensor2D
    const attn = dropout(linear(ctx, w, `${p}.attention.output.dense`), config.hidden_dropout_prob, opts)
    x = layerNorm(tf.add(attn, x), w, `${p}.attention.output.LayerNorm`, eps)
    const inter = activation(linear(x, w, `${p}.intermediate.dense`), config.hidden_act)
    const out = dropout(linear(inter, w, `${p}.output.dense`), config.hidden_dropout_prob, opts)
    x = layerNorm(tf.add(out, x), w, `${p}.output.LayerNorm`, eps)
  }

  const lastHiddenState = tf.reshape(x, [B, T, H]) as tf.Tensor3D
  let pooled: tf.Tensor2D | null = null
  const pool = opts.pool ?? w.has('pooler.dense.weight')
  if (pool) {
    pooled = tf.tanh(linear(firstToken(lastHiddenState), w, 'pooler.dense'))
  }
  return { lastHiddenState, pooled }
}

function firstToken(h: tf.Tensor3D): tf.Tensor2D {
  const [B, , H] = h.shape
  return tf.reshape(tf.slice(h, [0, 0, 0], [B, 1, H]), [B, H])
}

/**
 * RobertaClassificationHead: x = hidden[:, 0]; dropout; dense; tanh; dropout; out_proj.
 * Weights named classifier.dense.* and classifier.out_proj.*. Returns logits [batch, numLabels].
 */
export function classifierForward(config: ModelConfig, w: Weights, lastHiddenState: tf.Tensor3D, opts: ForwardOptions = {}): tf.Tensor2D {
  const c = config as ModelConfig & { classifier_dropout?: number | null }
  const rate = c.classifier_dropout ?? config.hidden_dropout_prob
  let x = dropout(firstToken(lastHiddenState), rate, opts)
  x = tf.tanh(linear(x, w, 'classifier.dense'))
  x = dropout(x, rate, opts)
  return linear(x, w, 'classifier.out_proj')
}
