import { mkdtemp, mkdir, readdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { readFile } from 'node:fs/promises'
import { createSwarmDefinition, type SwarmOptions } from '../config/genesis.js'
import { formatSwarmDefinition } from '../config/swarm.js'
import { writeFileAtomic } from '../util/atomic.js'
import { freePorts } from '../util/ports.js'
import { UserError } from '../util/errors.js'
import type { Logger } from '../util/log.js'
import { TASKS } from '../data/index.js'
import type { NodeStatus } from '../rounds/status.js'
import type { LedgerEntry } from '../store/ledger.js'
import { spawnNode, stopNodes, type ChildNode } from '../daemon/child-node.js'
import { fetchNodeJson, initHome, writeNodeConfig } from './init.js'
import { MeshProgress } from './mesh-progress.js'
import { meshReport, type MeshReport } from './mesh-report.js'

export interface MeshOptions {
  nodes: number
  rounds: number
  dir?: string
  steps?: number
  examples?: number
  timeoutSec: number
  json: boolean
  /** Print node-0's dashboard address as soon as the nodes start. */
  dashboard?: boolean
  /** The swarm's fusion rule and its params (default mean). */
  fusionRule?: SwarmOptions['fusionRule']
  fusionParams?: SwarmOptions['fusionParams']
  log: Logger
}

interface MeshNode extends ChildNode {
  name: string
  task: string
  peerId: string
  status?: NodeStatus
}


/**
 * A local swarm for trying coldfusiond: N daemon processes on loopback TCP, each with its own
 * generated task, run for R rounds. Exits 0 only if every node committed the same base hash in
 * every round.
 */
export async function meshCommand(o: MeshOptions): Promise<number> {
  if (!Number.isInteger(o.nodes) || o.nodes < 1 || o.nodes > 64) throw new UserError('--nodes must be an integer from 1 to 64')
  if (!Number.isInteger(o.rounds) || o.rounds < 1) throw new UserError('--rounds must be a positive integer')
  const started = Date.now()
  const dir = o.dir ? resolve(o.dir) : await mkdtemp(join(tmpdir(), 'coldfusiond-mesh-'))
  await mkdir(dir, { recursive: true })
  if ((await readdir(dir)).length > 0) throw new UserError(`${dir} is not empty; give --dir an empty or new directory`)
  o.log.info({ dir, nodes: o.nodes, rounds: o.rounds }, 'creating mesh')

  // One swarm for all nodes; a node may fuse alone only in a 1-node mesh.
  const { def } = createSwarmDefinition({
    name: 'local-mesh',
    minContributors: Math.min(2, o.nodes),
    stepsPerRound: o.steps,
    collectTimeoutSec: 90,
    voteTimeoutSec: 15,
    fusionRule: o.fusionRule,
    fusionParams: o.fusionParams,
  })
  const swarmFile = join(dir, 'swarm.json')
  await writeFileAtomic(swarmFile, formatSwarmDefinition(def))

  // With --dashboard, node-0's API gets a known port so its address can be printed up front.
  const ports = await freePorts(o.nodes + (o.dashboard ? 1 : 0))
  const dashboardPort = o.dashboard ? ports[o.nodes] : 0
  const nodes: MeshNode[] = []
  for (let i = 0; i < o.nodes; i++) {
    const task = TASKS[i % TASKS.length].name
    const home = join(dir, `node-${i}`)
    const r = await initHome({
      home, swarmFile, demoTask: task, demoSeed: 1000 + i, demoExamples: o.examples,
      listen: [`/ip4/127.0.0.1/tcp/${ports[i]}`], mdns: false,
    })
    nodes.push({ name: `node-${i}`, home, task, peerId: r.peerId })
  }
  // Every node bootstraps to every other: any start order works, the dialer retries.
  for (let i = 0; i < nodes.length; i++) {
    const bootstrap = nodes.filter((_, j) => j !== i).map((n, _k) => `/ip4/127.0.0.1/tcp/${ports[nodes.indexOf(n)]}/p2p/${n.peerId}`)
    await writeNodeConfig(nodes[i].home, {
      listen: [`/ip4/127.0.0.1/tcp/${ports[i]}`], announce: [], bootstrap, mdns: false,
      data: { train: 'data/train.jsonl', evalFraction: 0.15 }, api: { host: '127.0.0.1', port: i === 0 ? dashboardPort : 0 }, backend: 'auto', logLevel: 'info',
    })
  }

  if (o.dashboard) {
    // Before the progress bars take over the terminal; stdout carries the single JSON object with --json.
    const line = `dashboard: http://127.0.0.1:${dashboardPort}/ (node-0, live while the mesh runs)\n`
    if (o.json) process.stderr.write(line)
    else process.stdout.write(line)
  }
  const progress = new MeshProgress(nodes.map((n) => ({ name: n.name, task: n.task })), o.rounds, o.log)
  let interrupted = false
  const onSigint = (): void => {
    interrupted = true
  }
  process.once('SIGINT', onSigint)
  let report: MeshReport | undefined
  try {
    for (const n of nodes) await spawnNode(n, o.rounds, { ...process.env, COLDFUSIOND_LOG_LEVEL: process.env.COLDFUSIOND_LOG_LEVEL ?? 'info' })
    const deadline = started + o.timeoutSec * 1000
    while (true) {
      await sleep(500)
      await Promise.all(nodes.map(async (n) => (n.status = (await fetchNodeJson<NodeStatus>(n.home, '/status')) ?? n.status)))
      progress.update(nodes.map((n) => n.status))
      const dead = nodes.find((n) => n.exit !== undefined)
      if (dead) {
        progress.stop()
        const tail = await lastLines(join(dead.home, 'node.log'), 15)
        throw new UserError(`${dead.name} exited (code ${dead.exit}) before finishing; the end of ${join(dead.home, 'node.log')}:\n${tail}`)
      }
      if (nodes.every((n) => n.status && n.status.round >= o.rounds)) break
      if (interrupted) throw new UserError('interrupted')
      if (Date.now() > deadline) {
        progress.stop()
        throw new UserError(`the mesh did not finish ${o.rounds} rounds within ${o.timeoutSec} s (see node.log in each node directory under ${dir})`)
      }
    }
    progress.stop()
    const ledgers = await Promise.all(nodes.map(async (n) => (await fetchNodeJson<LedgerEntry[]>(n.home, '/rounds')) ?? []))
    report = meshReport(nodes.map((n, i) => ({ name: n.name, task: n.task, peerId: n.peerId, ledger: ledgers[i] })), o.rounds, (Date.now() - started) / 1000, dir)
  } finally {
    progress.stop()
    process.removeListener('SIGINT', onSigint)
    await stopNodes(nodes)
  }
  if (o.json) process.stdout.write(JSON.stringify(report.json) + '\n')
  else process.stdout.write(report.table + '\n')
  return report.json.agreed ? 0 : 1
}

async function lastLines(file: string, n: number): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).trimEnd().split('\n').slice(-n).join('\n')
  } catch {
    return '(no log)'
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}
