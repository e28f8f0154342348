import type { ModelConfig } from '../config.js'
import { bodyTensorShapes } from '../init.js'
import type { DType, SafetensorsEntry } from '../safetensors.js'
import { UserError } from '../../util/errors.js'

/**
 * How a hub checkpoint names the encoder body, and the way back. Our internal names are those of
 * transformers' RobertaModel / BertModel (`embeddings.*`, `encoder.layer.N.*`, `pooler.*`).
 * Hub files add a base-model prefix when saved from a task model (`roberta.`, `bert.`), carry
 * pre-training heads (`lm_head.*`, `cls.*`) and buffers (`embeddings.position_ids`), and old BERT
 * files name LayerNorm parameters gamma/beta. transformers' from_pretrained accepts all of it,
 * and so does this mapping.
 */

export interface NameMap {
  /** Prefix of every body tensor in the file ('' when saved from the base model). */
  prefix: string
  /** Internal name -> name in the file, where it is not prefix + internal name. */
  renamed: Record<string, string>
  /** Storage dtype of the body tensors, and the exceptions. */
  dtype: DType
  dtypes?: Record<string, DType>
}

export interface CheckpointPlan {
  /** Internal name -> header entry of the file. */
  body: Map<string, SafetensorsEntry>
  names: NameMap
  /** Tensors of the file that are not part of the body (heads, buffers), by original name. */
  ignored: string[]
  /** The file has no pooler (a checkpoint saved from a masked-LM model, e.g. roberta-base). */
  poolerMissing: boolean
}

const BASE_PREFIX: Record<ModelConfig['model_type'], string> = { roberta: 'roberta.', bert: 'bert.' }
const BODY_ROOTS = ['embeddings.', 'encoder.', 'pooler.']
const FLOAT_DTYPES = new Set(['F32', 'F16', 'BF16'])

function isBody(name: string): boolean {
  return BODY_ROOTS.some((r) => name.startsWith(r))
}

/** Buffers transformers registers on the embeddings; they hold no learned values. */
function isBuffer(name: string): boolean {
  return name === 'embeddings.position_ids' || name === 'embeddings.token_type_ids'
}

/** transformers renames LayerNorm parameters of old TensorFlow ports (gamma -> weight, beta -> bias). */
function legacyRename(name: string): string {
  return name.replace(/\.gamma$/, '.weight').replace(/\.beta$/, '.bias')
}

export function planCheckpoint(config: ModelConfig, entries: SafetensorsEntry[], file: string): CheckpointPlan {
  const basePrefix = BASE_PREFIX[config.model_type]
  const prefixed = entries.some((e) => e.name.startsWith(basePrefix) && isBody(e.name.slice(basePrefix.length)))
  const prefix = prefixed ? basePrefix : ''
  const expected = bodyTensorShapes(config)
  const body = new Map<string, SafetensorsEntry>()
  const ignored: string[] = []
  for (const e of entries) {
    if (!e.name.startsWith(prefix)) {
      ignored.push(e.name)
      continue
    }
    const internal = legacyRename(e.name.slice(prefix.length))
    if (!isBody(internal) || isBuffer(internal)) {
      ignored.push(e.name)
      continue
    }
    if (!expected.has(internal)) {
      throw new UserError(`${file}: tensor ${e.name} is not part of a ${config.model_type} encoder with the sizes in config.json (${config.num_hidden_layers} layers); check that config.json belongs to this checkpoint`)
    }
    const other = body.get(internal)
    if (other) throw new UserError(`${file}: tensors ${other.name} and ${e.name} are the same parameter (${internal}); remove one`)
    if (!FLOAT_DTYPES.has(e.dtype)) throw new UserError(`${file}: tensor ${e.name} has dtype ${e.dtype}; supported: F32, F16, BF16`)
    const want = expected.get(internal)!
    if (want.length !== e.shape.length || want.some((d, i) => d !== e.shape[i])) {
      throw new UserError(`${file}: tensor ${e.name} has shape [${e.shape}], config.json implies [${want}]`)
    }
    body.set(internal, e)
  }
  let poolerMissing = false
  for (const name of expected.keys()) {
    if (body.has(name)) continue
    if (name.startsWith('pooler.')) {
      poolerMissing = true
      continue
    }
    throw new UserError(`${file}: tensor ${prefix}${name} is missing; the file is not a complete ${config.model_type} encoder checkpoint`)
  }
  if (poolerMissing && [...body.keys()].some((n) => n.startsWith('pooler.'))) {
    throw new UserError(`${file}: the pooler is incomplete (one of ${prefix}pooler.dense.weight / .bias is missing)`)
  }
  return { body, names: nameMap(body, prefix), ignored, poolerMissing }
}

function nameMap(body: Map<string, SafetensorsEntry>, prefix: string): NameMap {
  const renamed: Record<string, string> = {}
  const count = new Map<DType, number>()
  for (const [internal, e] of body) {
    if (e.name !== prefix + internal) renamed[internal] = e.name
    count.set(e.dtype as DType, (count.get(e.dtype as DType) ?? 0) + 1)
  }
  const dtype = [...count].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))[0]?.[0] ?? 'F32'
  const dtypes: Record<string, DType> = {}
  for (const [internal, e] of body) if (e.dtype !== dtype) dtypes[internal] = e.dtype as DType
  return Object.keys(dtypes).length > 0 ? { prefix, renamed, dtype, dtypes } : { prefix, renamed, dtype }
}

/** The name a body tensor had in the original checkpoint (a generated pooler: prefix + name). */
export function originalName(names: NameMap, internal: string): string {
  return names.renamed[internal] ?? names.prefix + internal
}

export function originalDtype(names: NameMap, internal: string): DType {
  return names.dtypes?.[internal] ?? names.dtype
}
