import { z } from 'zod'

/** Activations of Hugging Face's ACT2FN that the encoder computes (see encoder.ts). */
export const HIDDEN_ACTS = ['gelu', 'gelu_python', 'gelu_new', 'gelu_pytorch_tanh', 'relu'] as const

/**
 * The encoder architecture, in the field names of a Hugging Face `config.json`, so that a
 * checkpoint directory written by `export` loads in Python's transformers unchanged.
 * RoBERTa and BERT share the body; they differ in position ids and tokenizer.
 */
export const ModelConfigSchema = z
  .object({
    model_type: z.enum(['roberta', 'bert']),
    architectures: z.array(z.string()).optional(),
    vocab_size: z.number().int().positive(),
    hidden_size: z.number().int().positive(),
    num_hidden_layers: z.number().int().positive(),
    num_attention_heads: z.number().int().positive(),
    intermediate_size: z.number().int().positive(),
    hidden_act: z.enum(HIDDEN_ACTS).default('gelu'),
    max_position_embeddings: z.number().int().positive(),
    type_vocab_size: z.number().int().positive().default(1),
    layer_norm_eps: z.number().positive().default(1e-5),
    pad_token_id: z.number().int().nonnegative().default(1),
    bos_token_id: z.number().int().nonnegative().default(0),
    eos_token_id: z.number().int().nonnegative().default(2),
    hidden_dropout_prob: z.number().min(0).max(1).default(0.1),
    attention_probs_dropout_prob: z.number().min(0).max(1).default(0.1),
    initializer_range: z.number().positive().default(0.02),
  })
  .passthrough()
  .refine((c) => c.hidden_size % c.num_attention_heads === 0, {
    message: 'hidden_size must be a multiple of num_attention_heads',
  })
  .refine((c) => c.model_type !== 'roberta' || c.max_position_embeddings > c.pad_token_id + 1, {
    message: 'max_position_embeddings must exceed pad_token_id + 1 (RoBERTa positions start after the pad id)',
  })

export type ModelConfig = z.infer<typeof ModelConfigSchema>

/**
 * The built-in model: a small RoBERTa-architecture encoder over a hashed-word vocabulary,
 * sized so that a 3-node swarm fine-tunes several rounds in a few minutes on 2 CPU cores.
 */
export function builtinModelConfig(): ModelConfig {
  return ModelConfigSchema.parse({
    model_type: 'roberta',
    architectures: ['RobertaModel'],
    vocab_size: 2048,
    hidden_size: 64,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    intermediate_size: 128,
    hidden_act: 'gelu',
    max_position_embeddings: 66,
    type_vocab_size: 1,
    layer_norm_eps: 1e-5,
    pad_token_id: 1,
    bos_token_id: 0,
    eos_token_id: 2,
    hidden_dropout_prob: 0.1,
    attention_probs_dropout_prob: 0.1,
    initializer_range: 0.02,
  })
}

/** The shared body is everything except the local task head. */
export function isBodyTensor(name: string): boolean {
  return !name.startsWith('classifier.')
}
