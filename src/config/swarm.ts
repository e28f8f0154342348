import { readFile } from 'node:fs/promises'
import { z } from 'zod'
import { ModelConfigSchema } from '../model/config.js'
import { CODEC_IDS } from '../codec/ids.js'
import { canonicalJson } from '../util/canonical-json.js'
import { sha256Hex } from '../util/hash.js'
import { ConfigError } from '../util/errors.js'
import { getFusionRule } from '../fusion/registry.js'

/**
 * The swarm definition (genesis): the shared, immutable settings every node must hold
 * identically. Its canonical hash is the swarm id, which scopes gossip topics and protocols,
 * so nodes with different settings can never mix their deltas.
 */

export const PROTOCOL_VERSION = 'coldfusion/1'

const hex64 = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex characters (a sha256)')

/** sha256 of files of a Hugging Face model directory, by file name (no paths). */
const FileHashes = z.record(z.string().regex(/^[A-Za-z0-9_.-]+$/, 'must be a plain file name'), hex64)
const StoredDType = z.enum(['F32', 'F16', 'BF16'])

/** A Hugging Face tokenizer: tokenizer.json and its side files, pinned by hash. */
export const HfTokenizerSpecSchema = z
  .object({
    kind: z.literal('huggingface'),
    maxLength: z.number().int().min(4).max(512),
    files: FileHashes.refine((f) => 'tokenizer.json' in f, { message: 'must include tokenizer.json' }),
  })
  .strict()

/**
 * A base loaded from a Hugging Face model directory. `files` pins config.json and
 * model.safetensors; `names` says how the checkpoint named and stored the body, so that export
 * writes it back the same way: each internal name is `prefix + name` unless listed in `renamed`
 * (e.g. LayerNorm gamma/beta), stored as `dtype` unless listed in `dtypes`. A checkpoint without
 * a pooler (e.g. roberta-base, saved from RobertaForMaskedLM) gets one generated from `poolerSeed`,
 * as transformers would initialise it, so that the body is a complete RobertaModel/BertModel.
 */
export const HfSourceSchema = z
  .object({
    kind: z.literal('huggingface'),
    files: FileHashes.refine((f) => 'model.safetensors' in f && 'config.json' in f, { message: 'must include config.json and model.safetensors' }),
    names: z
      .object({
        prefix: z.string().max(64),
        renamed: z.record(z.string(), z.string()),
        dtype: StoredDType,
        dtypes: z.record(z.string(), StoredDType).optional(),
      })
      .strict(),
    poolerSeed: z.string().min(1).optional(),
  })
  .strict()

export type HfTokenizerSpec = z.infer<typeof HfTokenizerSpecSchema>
export type HfSource = z.infer<typeof HfSourceSchema>

export const SwarmDefinitionSchema = z
  .object({
    protocol: z.literal(PROTOCOL_VERSION),
    name: z.string().min(1).max(100),
    // Random at creation, so two swarms with equal settings still get different ids.
    nonce: z.string().min(8).max(64),
    model: z
      .object({
        architecture: ModelConfigSchema,
        tokenizer: z.discriminatedUnion('kind', [
          z.object({ kind: z.literal('hashed-words'), maxLength: z.number().int().min(4).max(512) }).strict(),
          HfTokenizerSpecSchema,
        ]),
        base: z
          .object({
            hash: hex64,
            // Where round 0 comes from when no peer has it: a seeded generator that is
            // bit-identical on every platform, or a checkpoint a node must be given.
            source: z.discriminatedUnion('kind', [
              z.object({ kind: z.literal('seeded'), seed: z.string().min(1) }).strict(),
              z.object({ kind: z.literal('checkpoint') }).strict(),
              HfSourceSchema,
            ]),
          })
          .strict(),
      })
      .strict(),
    training: z
      .object({
        stepsPerRound: z.number().int().min(1).max(1_000_000),
        batchSize: z.number().int().min(1).max(4096),
        learningRate: z.number().positive().max(1),
        // constant within a round, or decaying linearly to 0 over the round's steps.
        lrSchedule: z.enum(['constant', 'linear']),
      })
      .strict(),
    fusion: z
      .object({
        // mean: the paper's rule; median and trimmed-mean resist a minority of poisoned deltas.
        // weighted-mean, task-arithmetic, ties and dare merge task-specific deltas (docs/experiment.md).
        rule: z.enum(['mean', 'median', 'trimmed-mean', 'weighted-mean', 'task-arithmetic', 'ties', 'dare']),
        params: z.record(z.string(), z.union([z.number(), z.string(), z.boolean()])).optional(),
        // Each delta's L2 norm is bounded before fusion: clipped to maxNorm, or left out.
        normBound: z.object({ mode: z.enum(['clip', 'reject']), maxNorm: z.number().positive() }).strict().optional(),
      })
      .strict(),
    compression: z
      .object({
        codec: z.enum(CODEC_IDS),
        blockSize: z.number().int().min(16).max(65536),
        // topk-* codecs: values kept per million (absent: DEFAULT_DENSITY_PPM).
        densityPpm: z.number().int().min(1).max(1_000_000).optional(),
        // Carry what compression dropped into the next round's delta (absent: on for all but f32 and q8-block).
        errorFeedback: z.boolean().optional(),
      })
      .strict(),
    rounds: z
      .object({
        minContributors: z.number().int().min(1),
        // At most this many nodes train each round, drawn afresh every round by a hash of (round,
        // base, peer id): the paper's "8 of 35". The others fetch, vote and fuse. Absent: all train.
        contributorsPerRound: z.number().int().min(1).max(256).optional(),
        // How long after its own announcement a node waits for the others' deltas.
        collectTimeoutSec: z.number().positive(),
        // How long a node waits for the other contributors' votes after its own.
        voteTimeoutSec: z.number().positive(),
        // Announcements for larger payloads are rejected before anything is fetched.
        maxDeltaBytes: z.number().int().positive(),
      })
      .strict()
      .refine((r) => r.contributorsPerRound === undefined || r.minContributors <= r.contributorsPerRound, {
        message: 'minContributors cannot exceed contributorsPerRound (a round would wait for more deltas than are trained)',
        path: ['minContributors'],
      }),
  })
  .strict()

export type SwarmDefinition = z.infer<typeof SwarmDefinitionSchema>

export function swarmId(def: SwarmDefinition): string {
  return sha256Hex(Buffer.from(canonicalJson(def), 'utf8'))
}

export function parseSwarmDefinition(raw: unknown, file: string): SwarmDefinition {
  const r = SwarmDefinitionSchema.safeParse(raw)
  if (!r.success) {
    const msgs = r.error.issues.slice(0, 5).map((i) => `${file}: ${i.path.join('.') || '(top level)'}: ${i.message}`)
    throw new ConfigError(`invalid swarm definition\n${msgs.join('\n')}\nA swarm definition is created by \`coldfusiond swarm create\` or \`coldfusiond init\`; every node of a swarm needs the same file.`)
  }
  try {
    getFusionRule(r.data.fusion.rule)!.checkParams?.(r.data.fusion.params ?? {})
  } catch (err) {
    throw new ConfigError(`${file}: fusion.params: ${(err as Error).message}`)
  }
  return r.data
}

export async function loadSwarmDefinition(file: string): Promise<{ def: SwarmDefinition; id: string }> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    throw new ConfigError(`${file}: cannot read the swarm definition (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`)
  }
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (err) {
    throw new ConfigError(`${file}: the swarm definition is not valid JSON (${(err as Error).message})`)
  }
  const def = parseSwarmDefinition(raw, file)
  return { def, id: swarmId(def) }
}

export function formatSwarmDefinition(def: SwarmDefinition): string {
  return JSON.stringify(def, null, 2) + '\n'
}
