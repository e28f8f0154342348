import { mkdir, readFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import type { CodecId } from '../codec/ids.js'
import { createSwarmDefinition } from '../config/genesis.js'
import { formatSwarmDefinition, parseSwarmDefinition } from '../config/swarm.js'
import type { NodeStatus } from '../rounds/status.js'
import type { LedgerEntry } from '../store/ledger.js'
import { writeFileAtomic } from '../util/atomic.js'
import { freePorts } from '../util/ports.js'
import { fetchNodeJson, initHome, writeNodeConfig } from '../cli/init.js'
import { exportBase } from '../cli/export.js'
import { spawnNode, stopNodes, type ChildNode } from '../daemon/child-node.js'

export { BIN } from '../daemon/child-node.js'

export interface SwarmSpec {
  dir: string
  /** One node per task: its sampled training file. */
  nodes: { task: string; trainFile: string }[]
  rounds: number
  steps: number
  batchSize: number
  lr: number
  /** Seed of the round-0 base (the same for every arm). */
  baseSeed: string
  fusion: { rule: string; params?: Record<string, number> }
  /** Delta compression of the swarm (default: the swarm default, q8-block). */
  codec?: { codec: CodecId; densityPpm?: number }
  timeoutSec: number
  onProgress?: (line: string) => void
}

export interface SwarmRun {
  dir: string
  swarmId?: string
  /** Model directories of the bases of rounds 0..R, exported from node-0 with `export`. */
  baseDirs: string[]
  hashes: string[]
  agreed: boolean
  seconds: number
}

/**
 * A real local swarm: one `coldfusiond start` process per task on loopback TCP, each with its own
 * training file, run for R rounds (every node contributes to every round), then every round's
 * base exported from node-0's home. `agreed` is true when all nodes hold the same ledger hashes.
 */
export async function runSwarm(s: SwarmSpec): Promise<SwarmRun> {
  const started = Date.now()
  await mkdir(s.dir, { recursive: true })
  const { def: d0 } = createSwarmDefinition({
    name: 'experiment', seed: s.baseSeed, minContributors: s.nodes.length, stepsPerRound: s.steps, batchSize: s.batchSize,
    learningRate: s.lr, collectTimeoutSec: Math.max(120, s.timeoutSec), voteTimeoutSec: 30,
    codec: s.codec?.codec, densityPpm: s.codec?.densityPpm,
  })
  const def = parseSwarmDefinition({ ...d0, fusion: { rule: s.fusion.rule, ...(s.fusion.params && Object.keys(s.fusion.params).length > 0 ? { params: s.fusion.params } : {}) } }, 'experiment swarm')
  const swarmFile = join(s.dir, 'swarm.json')
  await writeFileAtomic(swarmFile, formatSwarmDefinition(def))
  const ports = await freePorts(s.nodes.length)
  const nodes: (ChildNode & { peerId: string; status?: NodeStatus })[] = []
  for (let i = 0; i < s.nodes.length; i++) {
    const home = join(s.dir, `node-${i}-${s.nodes[i].task}`)
    const r = await initHome({ home, swarmFile, data: resolve(s.nodes[i].trainFile), listen: [`/ip4/127.0.0.1/tcp/${ports[i]}`], mdns: false })
    nodes.push({ home, peerId: r.peerId })
  }
  for (let i = 0; i < nodes.length; i++) {
    const bootstrap = nodes.flatMap((n, j) => (j === i ? [] : [`/ip4/127.0.0.1/tcp/${ports[j]}/p2p/${n.peerId}`]))
    await writeNodeConfig(nodes[i].home, {
      listen: [`/ip4/127.0.0.1/tcp/${ports[i]}`], announce: [], bootstrap, mdns: false,
      data: { train: resolve(s.nodes[i].trainFile), evalFraction: 0.05 }, api: { host: '127.0.0.1', port: 0 }, backend: 'auto', logLevel: 'info',
    })
  }
  let ledgers: LedgerEntry[][] = []
  try {
    for (const n of nodes) await spawnNode(n, s.rounds)
    const deadline = started + s.timeoutSec * 1000
    let last = ''
    while (true) {
      await new Promise((r) => setTimeout(r, 1000))
      await Promise.all(nodes.map(async (n) => (n.status = (await fetchNodeJson<NodeStatus>(n.home, '/status')) ?? n.status)))
      const line = nodes.map((n, i) => `${s.nodes[i].task}:r${n.status?.round ?? 0}/${n.status?.phase ?? '-'}`).join(' ')
      if (line !== last) s.onProgress?.(line)
      last = line
      const dead = nodes.find((n) => n.exit !== undefined)
      if (dead) throw new Error(`a node exited early (code ${dead.exit}); see ${join(dead.home, 'node.log')}`)
      if (nodes.every((n) => n.status && n.status.round >= s.rounds)) break
      if (Date.now() > deadline) throw new Error(`swarm in ${s.dir} did not finish ${s.rounds} rounds in ${s.timeoutSec} s`)
    }
    ledgers = await Promise.all(nodes.map(async (n) => (await fetchNodeJson<LedgerEntry[]>(n.home, '/rounds')) ?? []))
  } finally {
    await stopNodes(nodes)
  }
  const key = (l: LedgerEntry[]) => JSON.stringify(l.filter((e) => e.round >= 1 && e.round <= s.rounds).map((e) => [e.round, e.hash]))
  const agreed = ledgers.every((l) => key(l) === key(ledgers[0]))
  const baseDirs: string[] = []
  const hashes: string[] = []
  for (let r = 0; r <= s.rounds; r++) {
    const out = join(s.dir, 'bases', `round-${r}`)
    const e = await exportBase({ home: nodes[0].home, out, round: r })
    baseDirs.push(out)
    hashes.push(e.hash)
  }
  return { dir: s.dir, baseDirs, hashes, agreed, seconds: (Date.now() - started) / 1000 }
}


export async function readText(file: string): Promise<string> {
  return readFile(file, 'utf8')
}
