import type { ModelConfig } from '../config.js'
import { Rng } from '../prng.js'
import { decodeSafetensors, encodeSafetensors, readSafetensorsHeader } from '../safetensors.js'
import { sortedNames, type TensorMap } from '../tensors.js'
import { PayloadError, UserError } from '../../util/errors.js'
import { sha256Hex } from '../../util/hash.js'
import { planCheckpoint, type NameMap } from './names.js'

/**
 * A hub checkpoint turned into our base: the body tensors in float32 under internal names, in
 * the canonical safetensors form every node hashes identically.
 */

export interface HfBase {
  body: TensorMap
  names: NameMap
  /** Pre-training heads and buffers that were in the file and are not part of the base. */
  ignored: string[]
  /** Seed of the generated pooler, when the file had none. */
  poolerSeed?: string
  /** The canonical checkpoint (float32, internal names, sorted) and its sha256: the round-0 base. */
  canonical: Uint8Array
  hash: string
}

/**
 * @param poolerSeed seeds the pooler when the file has none; the same seed gives the same
 *   pooler on every node (it is recorded in the swarm definition).
 */
export function loadHfBase(bytes: Uint8Array, config: ModelConfig, file: string, poolerSeed: string): HfBase {
  let plan
  try {
    const header = readSafetensorsHeader(bytes, file)
    plan = planCheckpoint(config, header.entries, file)
  } catch (err) {
    if (err instanceof PayloadError) throw new UserError(`${err.message}; the file is damaged or not a safetensors checkpoint`)
    throw err
  }
  const originals = new Map([...plan.body].map(([internal, e]) => [e.name, internal]))
  const decoded = decodeSafetensors(bytes, file, { select: (name) => originals.has(name) }).tensors
  const body: TensorMap = new Map()
  for (const [name, t] of decoded) body.set(originals.get(name)!, t)
  let seed: string | undefined
  if (plan.poolerMissing) {
    seed = poolerSeed
    for (const [name, t] of initPooler(config, seed)) body.set(name, t)
  }
  const sorted: TensorMap = new Map(sortedNames(body).map((n) => [n, body.get(n)!]))
  const canonical = encodeSafetensors(sorted)
  return { body: sorted, names: plan.names, ignored: plan.ignored, poolerSeed: seed, canonical, hash: sha256Hex(canonical) }
}

/**
 * A pooler as transformers initialises a missing one (weight ~ normal(0, initializer_range),
 * bias 0), from the integer-only Rng so that every node generates the same bits.
 */
export function initPooler(config: ModelConfig, seed: string): TensorMap {
  const H = config.hidden_size
  const weight = new Float32Array(H * H)
  const rng = Rng.fromSeed('coldfusiond-hf-pooler-v1', seed)
  for (let i = 0; i < weight.length; i++) weight[i] = rng.normalApprox() * config.initializer_range
  return new Map([
    ['pooler.dense.bias', { shape: [H], data: new Float32Array(H) }],
    ['pooler.dense.weight', { shape: [H, H], data: weight }],
  ])
}
