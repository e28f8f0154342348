import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { randomBytes } from 'node:crypto'
import { Daemon } from '../daemon/daemon.js'
import { loadNodeConfig } from '../config/node.js'
import { HomeLayout } from '../store/home.js'
import { Ledger, type LedgerEntry } from '../store/ledger.js'
import { readApiUrl } from '../cli/init.js'
import { selectBackend } from '../model/backend.js'
import { bodyTensorShapes } from '../model/init.js'
import type { NodeStatus } from '../rounds/status.js'
import type { Logger } from '../util/log.js'
import { simSwarmDefinition, writeSimHomes, type SimNodeHome } from './setup.js'
import { recomputeLineage } from './verify.js'

export interface SimOptions {
  nodes: number
  rounds: number
  /** Node homes go here (default: a temporary directory, removed afterwards). */
  dir?: string
  seed?: string
  steps?: number
  examples?: number
  minContributors?: number
  /** Nodes drawn to train each round (default every node). */
  contributorsPerRound?: number
  /** Each node's maxPeers (default 8). */
  maxPeers?: number
  bootstrapPeers?: number
  timeoutSec?: number
  /** One logger for all nodes (each gets a `node` field); keep it at warn or quieter. */
  log: Logger
  /** Called about every 250 ms with the nodes' live status. */
  onProgress?: (p: SimProgress) => void
  /** Called when every node has committed a round (hashes are read from the ledgers at the end). */
  onRound?: (r: Pick<SimRound, 'round' | 'seconds' | 'protocolSeconds'>) => void
}

export interface SimProgress {
  elapsed: number
  committed: number[]
  phases: Record<string, number>
  rssBytes: number
}

export interface SimRound {
  round: number
  /** Wall time from the previous round's last commit (round 1: from start) to this round's last commit. */
  seconds: number
  /** From the moment the last node finished training to the last commit: gossip, fetch, vote, fuse, commit. */
  protocolSeconds: number
  /** The committed base of each node (node order). */
  hashes: string[]
  agreed: boolean
  contributors: number
  /** Nodes that took this round from the swarm by fork choice instead of fusing it themselves. */
  switched: number
  /** Mean seconds a node spent in each phase of this round (training, collecting, voting, ...). */
  phases: Record<string, number>
}

export interface SimResult {
  agreed: boolean
  /** Every round's base recomputed from node-0's stored parent and deltas, outside the daemons. */
  recomputed: boolean
  nodes: number
  rounds: SimRound[]
  seconds: number
  startupSeconds: number
  memory: {
    baselineRssMiB: number
    peakRssMiB: number
    /** (peak RSS - RSS before the nodes started) / N. */
    rssPerNodeMiB: number
    /** Peak RSS / N, the process baseline included. */
    rssOverNMiB: number
    peakHeapUsedMiB: number
    heapPerNodeMiB: number
  }
  /** Per node, mean over nodes: delta bytes fetched, payload bytes of one delta, open connections. */
  transfer: { deltaBytesInPerNodePerRound: number; deltaBytes: number; connectionsPerNode: number }
  params: number
  dir: string
  seed: string
}

const MiB = 2 ** 20

/**
 * N real daemons in this process over the libp2p memory transport: the same composition root,
 * round loop, gossip and fetch protocol as `coldfusiond start`, on the tiny model.
 */
export async function runSim(o: SimOptions): Promise<SimResult> {
  if (!Number.isInteger(o.nodes) || o.nodes < 2) throw new RangeError('nodes must be an integer of at least 2')
  if (!Number.isInteger(o.rounds) || o.rounds < 1) throw new RangeError('rounds must be a positive integer')
  const seed = o.seed ?? 'coldfusion-sim'
  const tempDir = o.dir === undefined
  const dir = o.dir ? resolve(o.dir) : await mkdtemp(join(tmpdir(), 'coldfusiond-sim-'))
  const def = simSwarmDefinition({ nodes: o.nodes, seed, steps: o.steps ?? 2, minContributors: o.minContributors, contributorsPerRound: o.contributorsPerRound })
  const homes = await writeSimHomes({
    nodes: o.nodes, dir, seed, steps: o.steps ?? 2, examples: o.examples ?? 60, minContributors: o.minContributors, contributorsPerRound: o.contributorsPerRound,
    maxPeers: o.maxPeers ?? 8, bootstrapPeers: o.bootstrapPeers, tag: randomBytes(4).toString('hex'),
  }, def)

  // The tfjs backend is per process: load it first, so the baseline includes it.
  await selectBackend({ prefer: 'auto' })
  globalThis.gc?.()
  const baselineRss = process.memoryUsage().rss
  let peakRss = baselineRss
  let peakHeap = process.memoryUsage().heapUsed

  const t0 = performance.now()
  const daemons = await Promise.all(homes.map(async (h) => new Daemon({
    home: h.home, config: await loadNodeConfig(new HomeLayout(h.home).config), log: o.log.child({ node: h.name }),
    maxRounds: o.rounds, transport: 'memory',
    // Time to connect to the bootstrap peers before training takes the CPU.
    startupListenMs: 3000 + 100 * o.nodes,
    // Every node repeats its messages to every other: N^2 gossip in one process. Repeat less
    // often as N grows, keeping each node's share of the gossip about constant.
    republishMs: Math.max(2000, 250 * o.nodes),
  })))
  let failure: Error | undefined
  const runs = daemons.map((d, i) => d.run().then(
    () => { failure ??= new Error(`${homes[i].name} stopped before the swarm finished`) },
    (err: Error) => { failure ??= new Error(`${homes[i].name}: ${err.message}`) },
  ))

  const committedAt: number[][] = homes.map(() => [])
  const phaseClock = homes.map(() => ({ phase: '', round: 0, since: 0 }))
  const phaseTotals = new Map<number, Record<string, number>>()
  const trainedAt: number[][] = homes.map(() => [])
  const reported = new Set<number>()
  const rounds: SimRound[] = []
  const roundEnd = (r: number): number => Math.max(...committedAt.map((c) => c[r]))
  let startup = NaN
  let transfer: SimResult['transfer'] = { deltaBytesInPerNodePerRound: 0, deltaBytes: 0, connectionsPerNode: 0 }
  const deadline = Date.now() + (o.timeoutSec ?? 600) * 1000
  let lastProgress = 0
  let finished = false
  try {
    while (true) {
      await sleep(50)
      if (failure) throw failure
      const now = (performance.now() - t0) / 1000
      const mem = process.memoryUsage()
      peakRss = Math.max(peakRss, mem.rss)
      peakHeap = Math.max(peakHeap, mem.heapUsed)
      daemons.forEach((d, i) => {
        note(d.status, committedAt[i], trainedAt[i], now)
        clockPhase(d.status, phaseClock[i], phaseTotals, now)
      })
      if (Number.isNaN(startup) && daemons.every((d) => d.status && d.status.phase !== 'starting')) startup = now
      for (let r = 1; r <= o.rounds; r++) {
        if (reported.has(r) || !committedAt.every((c) => c[r] !== undefined)) continue
        reported.add(r)
        const start = r === 1 ? 0 : roundEnd(r - 1)
        const lastTrained = Math.max(...trainedAt.map((t) => t[r] ?? 0))
        const done: SimRound = { round: r, seconds: roundEnd(r) - start, protocolSeconds: Math.max(0, roundEnd(r) - lastTrained), hashes: [], agreed: false, contributors: 0, switched: 0, phases: {} }
        rounds.push(done)
        o.onRound?.(done)
      }
      if (o.onProgress && now - lastProgress >= 0.25) {
        lastProgress = now
        const phases: Record<string, number> = {}
        for (const d of daemons) if (d.status) phases[d.status.phase] = (phases[d.status.phase] ?? 0) + 1
        o.onProgress({ elapsed: now, committed: daemons.map((d) => d.status?.round ?? 0), phases, rssBytes: mem.rss })
      }
      if (reported.size === o.rounds) break
      if (Date.now() > deadline) {
        throw new Error(`the simulated swarm did not finish ${o.rounds} rounds within ${o.timeoutSec ?? 600} s (committed rounds: ${daemons.map((d) => d.status?.round ?? 0).join(' ')})`)
      }
    }
    transfer = await measureTransfer(homes, daemons, o.rounds)
    finished = true
  } finally {
    for (const d of daemons) d.stop('simulation finished')
    await Promise.allSettled(runs)
    if (!finished && tempDir) await rm(dir, { recursive: true, force: true })
  }
  const seconds = (performance.now() - t0) / 1000

  // The ledgers say what each node committed; node-0's stores let us recompute every round.
  const ledgers = await Promise.all(homes.map(async (h) => (await Ledger.open(new HomeLayout(h.home).ledger, def.model.base.hash)).all()))
  for (const r of rounds) {
    fillRound(r, ledgers)
    r.phases = Object.fromEntries(Object.entries(phaseTotals.get(r.round) ?? {}).map(([p, t]) => [p, t / o.nodes]))
  }
  rounds.sort((a, b) => a.round - b.round)
  const recomputed = await recomputeLineage(def, homes[0].home, ledgers[0])
  const params = [...bodyTensorShapes(def.model.architecture).values()].reduce((a, s) => a + s.reduce((x, y) => x * y, 1), 0)
  if (tempDir) await rm(dir, { recursive: true, force: true })
  const mib = (b: number) => b / MiB
  return {
    agreed: rounds.length === o.rounds && rounds.every((r) => r.agreed),
    recomputed,
    nodes: o.nodes,
    rounds,
    seconds,
    startupSeconds: startup,
    memory: {
      baselineRssMiB: mib(baselineRss), peakRssMiB: mib(peakRss), rssPerNodeMiB: mib(peakRss - baselineRss) / o.nodes, rssOverNMiB: mib(peakRss) / o.nodes,
      peakHeapUsedMiB: mib(peakHeap), heapPerNodeMiB: mib(peakHeap) / o.nodes,
    },
    transfer, params, dir, seed,
  }
}

/** Record when a node first left training for round r, and first committed round r. */
function note(s: NodeStatus | undefined, committed: number[], trained: number[], now: number): void {
  if (!s) return
  for (let r = 1; r <= s.round; r++) committed[r] ??= now
  const past = s.phase !== 'training' && s.phase !== 'syncing' && s.phase !== 'starting'
  if (past) trained[s.working] ??= now
  for (let r = 1; r < s.working; r++) trained[r] ??= now
}

/** Add the time since the last poll to the node's current phase of its working round. */
function clockPhase(s: NodeStatus | undefined, c: { phase: string; round: number; since: number }, totals: Map<number, Record<string, number>>, now: number): void {
  if (!s) return
  if (c.phase && c.phase !== 'done' && c.phase !== 'starting') {
    const t = totals.get(c.round) ?? {}
    t[c.phase] = (t[c.phase] ?? 0) + (now - c.since)
    totals.set(c.round, t)
  }
  c.phase = s.phase
  c.round = s.working
  c.since = now
}

function fillRound(r: SimRound, ledgers: readonly (readonly LedgerEntry[])[]): void {
  const entries = ledgers.map((l) => l.find((e) => e.round === r.round))
  r.hashes = entries.map((e) => e?.hash ?? '')
  r.agreed = entries.every((e) => e !== undefined && e.hash === entries[0]!.hash)
  r.contributors = entries[0]?.deltas.length ?? 0
  r.switched = entries.filter((e) => e?.kind === 'switch').length
}

async function measureTransfer(homes: SimNodeHome[], daemons: Daemon[], rounds: number): Promise<SimResult['transfer']> {
  const connections = daemons.reduce((n, d) => n + (d.libp2p?.getConnections().length ?? 0), 0)
  // Best effort, all at once: a node's API answers late when the process is saturated.
  const statuses = await Promise.all(homes.map(async (h) => {
    const api = await readApiUrl(h.home)
    return api && fetch(api.url + '/status', { signal: AbortSignal.timeout(30_000) }).then((r) => r.json() as Promise<NodeStatus>, () => undefined)
  }))
  const got = statuses.filter((s): s is NodeStatus => s !== undefined)
  const bytesIn = got.reduce((n, s) => n + s.transfer.bytesIn, 0)
  const deltaBytes = Math.max(0, ...got.filter((s) => s.transfer.fetched > 0).map((s) => s.transfer.bytesIn / s.transfer.fetched))
  return { deltaBytesInPerNodePerRound: got.length ? bytesIn / got.length / rounds : NaN, deltaBytes, connectionsPerNode: connections / homes.length }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}
