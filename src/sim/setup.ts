import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { generateKeyPairFromSeed, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { createSwarmDefinition } from '../config/genesis.js'
import { formatSwarmDefinition, parseSwarmDefinition, type SwarmDefinition } from '../config/swarm.js'
import { ModelConfigSchema, type ModelConfig } from '../model/config.js'
import { initBody } from '../model/init.js'
import { encodeSafetensors } from '../model/safetensors.js'
import { HomeLayout } from '../store/home.js'
import { peerIdOf } from '../store/identity.js'
import { TASKS, writeTaskDataset } from '../data/index.js'
import { writeNodeConfig } from '../cli/init.js'
import { writeFileAtomic } from '../util/atomic.js'
import { sha256Hex } from '../util/hash.js'
import type { PrivateKey } from '@libp2p/interface'

/** What a simulated swarm is made of; everything is derived from `seed`, so two runs are alike. */
export interface SimSetup {
  nodes: number
  dir: string
  seed: string
  /** Local training steps per round (few: the sim measures the protocol, not learning). */
  steps: number
  /** Generated examples per node (a fifth held out for the eval metric). */
  examples: number
  /** Contributors a round needs; default every node (or every drawn one), so each round fuses them all. */
  minContributors?: number
  /** Nodes drawn to train each round (the swarm's contributorsPerRound); default every node. */
  contributorsPerRound?: number
  /** Each node's maxPeers: it dials others only while connected to fewer. */
  maxPeers: number
  /**
   * Bootstrap peers per node: ring neighbour and chords, the rest learned from announcements.
   * Default: when maxPeers bounds the swarm, half of it (each node is also dialed by about as
   * many), else every earlier node, dialed at start before the CPU is busy training.
   */
  bootstrapPeers?: number
  /** Distinguishes /memory/ addresses of runs sharing a process. */
  tag: string
}

export interface SimNodeHome {
  name: string
  home: string
  peerId: string
  task: string
  addr: string
}

/**
 * The smallest sensible encoder: 1 layer, width 16, 2 heads, 512 hashed words, 16 tokens.
 * Every protocol step (delta, gossip, fetch, fusion, checkpoint) runs unchanged; only the
 * arithmetic per node shrinks, so one process can hold many nodes.
 */
export function tinyModelConfig(): ModelConfig {
  return ModelConfigSchema.parse({
    model_type: 'roberta',
    architectures: ['RobertaModel'],
    vocab_size: 512,
    hidden_size: 16,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    intermediate_size: 32,
    max_position_embeddings: 18,
  })
}

export const TINY_MAX_LENGTH = 16

/** The sim's swarm: the tiny model, every node a contributor, deadlines that grow with N. */
export function simSwarmDefinition(o: Pick<SimSetup, 'nodes' | 'seed' | 'steps' | 'minContributors' | 'contributorsPerRound'>): SwarmDefinition {
  const trainers = Math.min(o.nodes, o.contributorsPerRound ?? o.nodes)
  const { def } = createSwarmDefinition({
    name: `sim-${o.nodes}`,
    minContributors: o.minContributors ?? trainers,
    contributorsPerRound: o.contributorsPerRound,
    stepsPerRound: o.steps,
    batchSize: 8,
    // All nodes train on one CPU, so the last delta of a round comes ~N trainings after the first.
    collectTimeoutSec: 60 + 3 * trainers,
    voteTimeoutSec: 30 + o.nodes,
    maxLength: TINY_MAX_LENGTH,
  })
  const architecture = tinyModelConfig()
  const seed = `sim:${o.seed}`
  const base = encodeSafetensors(initBody(architecture, seed))
  return parseSwarmDefinition({
    ...def,
    nonce: sha256Hex(new TextEncoder().encode(seed)).slice(0, 16),
    model: {
      architecture,
      tokenizer: { kind: 'hashed-words', maxLength: TINY_MAX_LENGTH },
      base: { hash: sha256Hex(base), source: { kind: 'seeded', seed } },
    },
  }, 'sim swarm')
}

/** An Ed25519 identity from the run seed and the node index: the same peer ids every run. */
async function seededIdentity(seed: string, i: number): Promise<PrivateKey> {
  const bytes = Buffer.from(sha256Hex(new TextEncoder().encode(`sim-identity:${seed}:${i}`)), 'hex')
  return (await generateKeyPairFromSeed('Ed25519', bytes)) as unknown as PrivateKey
}

/** Ring neighbour and chords (i+1, i+N/2, i+N/4, ...): a connected graph with a small diameter. */
export function bootstrapTargets(i: number, n: number, k: number): number[] {
  const out: number[] = []
  for (let step = 1, span = Math.floor(n / 2); out.length < Math.min(k, n - 1) && step < n; step = span, span = Math.floor(span / 2)) {
    const j = (i + step) % n
    if (!out.includes(j)) out.push(j)
    if (span <= 1) break
  }
  return out
}

/** Write N node homes (identity, swarm.json, config.yaml, generated data) under `dir`. */
export async function writeSimHomes(o: SimSetup, def: SwarmDefinition): Promise<SimNodeHome[]> {
  await mkdir(o.dir, { recursive: true })
  const swarmText = formatSwarmDefinition(def)
  await writeFileAtomic(join(o.dir, 'swarm.json'), swarmText)
  const homes: SimNodeHome[] = []
  for (let i = 0; i < o.nodes; i++) {
    const L = new HomeLayout(join(o.dir, `node-${i}`))
    await mkdir(L.root, { recursive: true })
    const key = await seededIdentity(o.seed, i)
    await writeFileAtomic(L.identity, privateKeyToProtobuf(key as never), 0o600)
    await writeFileAtomic(L.swarm, swarmText)
    const task = TASKS[i % TASKS.length].name
    await writeTaskDataset(join(L.root, 'data'), task, o.examples, 1000 + i)
    const peerId = peerIdOf(key)
    homes.push({ name: `node-${i}`, home: L.root, peerId, task, addr: `/memory/cfd-sim-${o.tag}-${i}/p2p/${peerId}` })
  }
  const sparse = o.maxPeers < o.nodes - 1
  const k = o.bootstrapPeers ?? (sparse ? Math.max(1, Math.floor(o.maxPeers / 2)) : undefined)
  for (let i = 0; i < o.nodes; i++) {
    const listen = homes[i].addr.slice(0, homes[i].addr.indexOf('/p2p/'))
    const targets = k === undefined ? homes.slice(0, i).map((_, j) => j) : bootstrapTargets(i, o.nodes, k)
    await writeNodeConfig(homes[i].home, {
      listen: [listen], announce: [], bootstrap: targets.map((j) => homes[j].addr), mdns: false, maxPeers: o.maxPeers,
      data: { train: 'data/train.jsonl', evalFraction: 0.2 }, api: { host: '127.0.0.1', port: 0 }, backend: 'auto', logLevel: 'warn',
    })
  }
  return homes
}
