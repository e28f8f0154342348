import { mkdir, readFile, copyFile } from 'node:fs/promises'
import { join } from 'node:path'
import { HomeLayout } from '../store/home.js'
import { createIdentity, exists, peerIdOf } from '../store/identity.js'
import { ContentStore } from '../store/content-store.js'
import { NodeConfigSchema, renderNodeConfig, type NodeConfig, type NodeConfigInput } from '../config/node.js'
import { createSwarmDefinition, regenerateGenesis, type SwarmOptions } from '../config/genesis.js'
import { formatSwarmDefinition, loadSwarmDefinition, swarmId, type SwarmDefinition } from '../config/swarm.js'
import { writeFileAtomic } from '../util/atomic.js'
import { UserError } from '../util/errors.js'
import { TASKS, writeTaskDataset } from '../data/index.js'
import { ensureTokenFile, isLoopbackHost } from '../api/token.js'
import { createHfSwarmDefinition, installTokenizerFiles, modelForSwarm } from '../model/hf/swarm.js'
import type { HfModelDir } from '../model/hf/model-dir.js'

export interface InitOptions {
  home: string
  /** Join this swarm (a swarm.json from another member); otherwise create a new swarm. */
  swarmFile?: string
  swarm?: SwarmOptions
  data?: string
  demoTask?: string
  demoExamples?: number
  demoSeed?: number
  listen?: string[]
  bootstrap?: string[]
  mdns?: boolean
  apiPort?: number
  /** API host; anything but loopback also gets a generated bearer token file (api-token). */
  apiHost?: string
  swarmKeyFile?: string
  allowPeers?: string[]
  /** A Hugging Face model directory: the base of a new swarm, or this node's copy of the swarm's. */
  model?: string
}

export interface InitResult {
  home: string
  peerId: string
  swarmId: string
  def: SwarmDefinition
  config: NodeConfig
  createdSwarm: boolean
  demoData?: { task: string; file: string; examples: number }
  /** The API token file written because the API host is not loopback. */
  apiTokenFile?: string
  /** The Hugging Face model the base came from: tensors left out of the base, generated pooler. */
  model?: { dir: string; ignored: string[]; poolerGenerated: boolean }
}

/**
 * Create a node home: identity, config.yaml (commented), swarm.json and the round-0 checkpoint.
 * Without --data a demo dataset is generated, so `start` works straight away.
 */
export async function initHome(o: InitOptions): Promise<InitResult> {
  const L = new HomeLayout(o.home)
  if (await exists(L.identity)) {
    throw new UserError(`${L.root} is already initialised (it has ${L.identity}); use another --home, or delete it to start over`)
  }

  // The model is checked before anything is written: a node with a different copy is refused.
  let def: SwarmDefinition
  let model: HfModelDir | undefined
  let createdSwarm = false
  if (o.swarmFile) {
    def = (await loadSwarmDefinition(o.swarmFile)).def
    model = await modelForSwarm(def, o.model)
    await mkdir(L.root, { recursive: true })
    await copyFile(o.swarmFile, L.swarm)
  } else {
    if (o.model) ({ def, model } = await createHfSwarmDefinition(o.model, o.swarm))
    else def = createSwarmDefinition(o.swarm).def
    await mkdir(L.root, { recursive: true })
    await writeFileAtomic(L.swarm, formatSwarmDefinition(def))
    createdSwarm = true
  }
  const checkpoints = new ContentStore(L.checkpoints, 'safetensors')
  if (model) {
    await checkpoints.put(model.base.canonical, def.model.base.hash)
    await installTokenizerFiles(L.root, model.tokenizerFiles)
  } else {
    const genesis = regenerateGenesis(def)
    if (genesis) await checkpoints.put(genesis, def.model.base.hash)
  }

  const key = await createIdentity(L.identity)
  const peerId = peerIdOf(key)

  let demoData: InitResult['demoData']
  let dataPath = o.data
  if (!dataPath) {
    const task = o.demoTask ?? TASKS[0].name
    const n = o.demoExamples ?? 1200
    await writeTaskDataset(join(L.root, 'data'), task, n, o.demoSeed ?? hashSeed(peerId))
    dataPath = 'data/train.jsonl'
    demoData = { task, file: join(L.root, dataPath), examples: n }
  }

  const config = NodeConfigSchema.parse({
    listen: o.listen ?? ['/ip4/0.0.0.0/tcp/4001'],
    bootstrap: o.bootstrap ?? [],
    mdns: o.mdns ?? true,
    data: { train: dataPath },
    api: { host: o.apiHost ?? '127.0.0.1', port: o.apiPort ?? 0 },
    network: { swarmKeyFile: o.swarmKeyFile, allowPeers: o.allowPeers ?? [] },
  })
  await writeFileAtomic(L.config, renderNodeConfig(config))
  const apiTokenFile = isLoopbackHost(config.api.host) ? undefined : await ensureTokenFile(L.root)
  const modelInfo = model && { dir: model.dir, ignored: model.base.ignored, poolerGenerated: model.base.poolerSeed !== undefined }
  return { home: L.root, peerId, swarmId: swarmId(def), def, config, createdSwarm, demoData, model: modelInfo, apiTokenFile }
}

/** Rewrite a home's config.yaml (keeping the comments of the template). */
export async function writeNodeConfig(home: string, config: NodeConfigInput): Promise<void> {
  await writeFileAtomic(new HomeLayout(home).config, renderNodeConfig(NodeConfigSchema.parse(config)))
}

export async function readApiUrl(home: string): Promise<{ url: string; pid: number; peerId: string } | undefined> {
  try {
    return JSON.parse(await readFile(new HomeLayout(home).apiFile, 'utf8'))
  } catch {
    return undefined
  }
}

/** GET a JSON document from a running node's local API; undefined if it is not up. */
export async function fetchNodeJson<T>(home: string, path: string, timeoutMs = 3000): Promise<T | undefined> {
  const api = await readApiUrl(home)
  if (!api) return undefined
  try {
    const res = await fetch(api.url + path, { signal: AbortSignal.timeout(timeoutMs) })
    return res.ok ? ((await res.json()) as T) : undefined
  } catch {
    return undefined
  }
}

function hashSeed(s: string): number {
  let h = 2166136261
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619) >>> 0
  return h
}
