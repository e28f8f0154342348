import { ModelConfigSchema, HIDDEN_ACTS, type ModelConfig } from '../config.js'
import { UserError } from '../../util/errors.js'

/**
 * A Hugging Face config.json, checked for what our encoder computes and completed with the
 * defaults transformers' RobertaConfig / BertConfig apply, so that every field the forward pass
 * reads is explicit in the swarm definition.
 */

const HF_DEFAULTS: Record<'roberta' | 'bert', Record<string, unknown>> = {
  roberta: { pad_token_id: 1, bos_token_id: 0, eos_token_id: 2 },
  bert: { pad_token_id: 0 },
}
const COMMON_DEFAULTS = {
  hidden_act: 'gelu',
  hidden_dropout_prob: 0.1,
  attention_probs_dropout_prob: 0.1,
  max_position_embeddings: 512,
  type_vocab_size: 2,
  initializer_range: 0.02,
  layer_norm_eps: 1e-12,
  position_embedding_type: 'absolute',
}
const REQUIRED = ['vocab_size', 'hidden_size', 'num_hidden_layers', 'num_attention_heads', 'intermediate_size'] as const

export function parseHfConfig(raw: unknown, file: string): ModelConfig {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new UserError(`${file}: not a JSON object`)
  const c = raw as Record<string, unknown>
  const refuse = (msg: string): never => {
    throw new UserError(`${file}: ${msg}`)
  }
  const type = c.model_type
  if (type !== 'roberta' && type !== 'bert') {
    refuse(`model_type ${JSON.stringify(type)} is not supported (supported: "roberta" and "bert" encoders)`)
  }
  const kind = type as 'roberta' | 'bert'
  for (const k of REQUIRED) if (typeof c[k] !== 'number') refuse(`${k} is missing or not a number`)
  const full: Record<string, unknown> = { ...COMMON_DEFAULTS, ...HF_DEFAULTS[kind], ...c }
  if (full.position_embedding_type !== 'absolute') {
    refuse(`position_embedding_type ${JSON.stringify(full.position_embedding_type)} is not supported (only "absolute")`)
  }
  if (!(HIDDEN_ACTS as readonly unknown[]).includes(full.hidden_act)) {
    refuse(`hidden_act ${JSON.stringify(full.hidden_act)} is not supported (supported: ${HIDDEN_ACTS.join(', ')})`)
  }
  if (full.is_decoder === true) refuse('is_decoder is true: only encoders are supported')
  if (full.add_cross_attention === true) refuse('add_cross_attention is true: only encoders are supported')
  if (full.embedding_size !== undefined && full.embedding_size !== full.hidden_size) {
    refuse(`embedding_size ${String(full.embedding_size)} differs from hidden_size: factorized embeddings are not supported`)
  }
  const pruned = full.pruned_heads
  if (pruned && typeof pruned === 'object' && Object.keys(pruned).length > 0) refuse('pruned_heads is not empty: pruned models are not supported')
  const r = ModelConfigSchema.safeParse(full)
  if (!r.success) {
    const issues = r.error.issues.slice(0, 4).map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`)
    refuse(issues.join('; '))
  }
  return r.data!
}

/** The base-model class of an architecture (what export writes into `architectures`). */
export function baseModelClass(config: ModelConfig): string {
  return config.model_type === 'bert' ? 'BertModel' : 'RobertaModel'
}
