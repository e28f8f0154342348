import { randomBytes } from 'node:crypto'
import { builtinModelConfig } from '../model/config.js'
import { initBody } from '../model/init.js'
import { maxSequenceLength } from '../model/encoder.js'
import { encodeSafetensors } from '../model/safetensors.js'
import { sha256Hex } from '../util/hash.js'
import { UserError } from '../util/errors.js'
import { PROTOCOL_VERSION, SwarmDefinitionSchema, parseSwarmDefinition, type SwarmDefinition } from './swarm.js'
import type { FusionParams } from '../fusion/types.js'
import { DEFAULT_DENSITY_PPM, isSparseCodec, type CodecId } from '../codec/index.js'

/** Settings a user may choose when creating a swarm; everything else has a default. */
export interface SwarmOptions {
  name?: string
  minContributors?: number
  /** At most this many nodes train each round (drawn by hash); default all. */
  contributorsPerRound?: number
  stepsPerRound?: number
  batchSize?: number
  learningRate?: number
  codec?: CodecId
  blockSize?: number
  /** topk-* codecs: values kept per million (default DEFAULT_DENSITY_PPM). */
  densityPpm?: number
  /** Override the codec's error-feedback default. */
  errorFeedback?: boolean
  collectTimeoutSec?: number
  voteTimeoutSec?: number
  maxDeltaBytes?: number
  seed?: string
  maxLength?: number
  fusionRule?: SwarmDefinition['fusion']['rule']
  /** The rule's params (checked by the rule); they become part of the swarm id. */
  fusionParams?: FusionParams
  /** trimmed-mean: shorthand for fusionParams.trim. */
  trim?: number
  normBound?: { mode: 'clip' | 'reject'; maxNorm: number }
}

export const SWARM_DEFAULTS = {
  name: 'coldfusion-swarm',
  minContributors: 2,
  stepsPerRound: 100,
  batchSize: 16,
  learningRate: 2e-3,
  codec: 'q8-block' as const,
  blockSize: 256,
  collectTimeoutSec: 120,
  voteTimeoutSec: 20,
  maxDeltaBytes: 64 * 1024 * 1024,
  maxLength: 32,
}

/** A new swarm on the built-in model: its round-0 base is generated from a seed. */
export function createSwarmDefinition(o: SwarmOptions = {}): { def: SwarmDefinition; base: Uint8Array } {
  const architecture = builtinModelConfig()
  const seed = o.seed ?? randomBytes(8).toString('hex')
  const base = encodeSafetensors(initBody(architecture, seed))
  const d = { ...SWARM_DEFAULTS, ...stripUndefined(o) }
  if (o.contributorsPerRound !== undefined && d.minContributors > o.contributorsPerRound) {
    throw new UserError(`--min-contributors (${d.minContributors}) cannot exceed --contributors-per-round (${o.contributorsPerRound}): a round would wait for more deltas than are trained`)
  }
  if (d.maxLength > maxSequenceLength(architecture)) {
    throw new UserError(`--max-length ${d.maxLength} exceeds the built-in model's ${maxSequenceLength(architecture)} tokens`)
  }
  const def = parseSwarmDefinition(SwarmDefinitionSchema.parse({
    protocol: PROTOCOL_VERSION,
    name: d.name,
    nonce: randomBytes(8).toString('hex'),
    model: {
      architecture,
      tokenizer: { kind: 'hashed-words', maxLength: d.maxLength },
      base: { hash: sha256Hex(base), source: { kind: 'seeded', seed } },
    },
    training: { stepsPerRound: d.stepsPerRound, batchSize: d.batchSize, learningRate: d.learningRate, lrSchedule: 'constant' },
    fusion: {
      rule: o.fusionRule ?? 'mean',
      ...fusionParamsOf(o),
      ...(o.normBound ? { normBound: o.normBound } : {}),
    },
    compression: {
      codec: d.codec,
      blockSize: d.blockSize,
      ...(isSparseCodec(d.codec) ? { densityPpm: d.densityPpm ?? DEFAULT_DENSITY_PPM } : {}),
      ...(d.errorFeedback !== undefined ? { errorFeedback: d.errorFeedback } : {}),
    },
    rounds: {
      minContributors: d.minContributors,
      ...(o.contributorsPerRound !== undefined ? { contributorsPerRound: o.contributorsPerRound } : {}),
      collectTimeoutSec: d.collectTimeoutSec,
      voteTimeoutSec: d.voteTimeoutSec,
      maxDeltaBytes: d.maxDeltaBytes,
    },
  }), 'swarm settings')
  return { def, base }
}

/**
 * Rebuild the round-0 checkpoint from the swarm's seed and check it against the recorded hash.
 * Returns undefined when the swarm's base is a checkpoint that must come from a peer.
 */
export function regenerateGenesis(def: SwarmDefinition): Uint8Array | undefined {
  const src = def.model.base.source
  if (src.kind === 'huggingface') {
    throw new UserError(`this swarm's base is a Hugging Face model (${def.model.architecture.model_type}, base ${def.model.base.hash.slice(0, 12)}) and its checkpoint is not in this node's home: run \`coldfusiond init --home DIR --swarm swarm.json --model MODEL_DIR\` with a copy of the model directory`)
  }
  if (src.kind !== 'seeded') return undefined
  const bytes = encodeSafetensors(initBody(def.model.architecture, src.seed))
  const hash = sha256Hex(bytes)
  if (hash !== def.model.base.hash) {
    throw new UserError(`the regenerated round-0 base has hash ${hash.slice(0, 16)}, but the swarm definition records ${def.model.base.hash.slice(0, 16)}: this build of coldfusiond initialises the model differently from the one that created the swarm; use the same version, or fetch the base from a peer`)
  }
  return bytes
}

function fusionParamsOf(o: SwarmOptions): { params?: FusionParams } {
  const params = { ...o.fusionParams, ...(o.fusionRule === 'trimmed-mean' && o.trim !== undefined ? { trim: o.trim } : {}) }
  return Object.keys(params).length > 0 ? { params } : {}
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>
}
