import { readFile, unlink, mkdir } from 'node:fs/promises'
import type { Logger } from '../util/log.js'
import type { ConnectionGater } from '@libp2p/interface'
import { writeFileAtomic } from '../util/atomic.js'
import { UserError } from '../util/errors.js'
import { HomeLayout } from '../store/home.js'
import { loadIdentity, peerIdOf } from '../store/identity.js'
import { Ledger } from '../store/ledger.js'
import { ContentStore } from '../store/content-store.js'
import { loadSwarmDefinition, type SwarmDefinition } from '../config/swarm.js'
import { regenerateGenesis } from '../config/genesis.js'
import type { NodeConfig } from '../config/node.js'
import { createSwarmLibp2p, type SwarmLibp2p } from '../p2p/node.js'
import { swarmTopics } from '../p2p/topics.js'
import { SwarmGossip } from '../p2p/gossip.js'
import { ContentProtocol } from '../p2p/fetch.js'
import { PeerKeeper } from '../p2p/dialer.js'
import { allowlistGater, loadSwarmKey } from '../p2p/access.js'
import { BanList } from '../p2p/banlist.js'
import { withGossipFaults, type GossipFaults } from '../p2p/faults.js'
import { RoundRunner } from '../rounds/runner.js'
import type { NodeStatus } from '../rounds/status.js'
import { ApiServer } from '../api/server.js'
import { NodeTelemetry } from '../api/telemetry.js'
import { apiTokenFor } from '../api/token.js'
import { selectBackend, type BackendPreference } from '../model/backend.js'
import { fusionHelperProblem, fusionThreads, setFusionThreads, startFusionHelpers } from '../fusion/index.js'
import { decodeSafetensors } from '../model/safetensors.js'
import { loadExamples, splitHeldOut } from '../data/index.js'
import { NodeTrainer } from '../train/local.js'
import { loadSwarmTokenizer } from '../model/hf/swarm.js'
import { fusionPorts, loadErrorFeedback } from './ports.js'
import { join } from 'node:path'
import { repairCheckpoints } from '../rounds/repair.js'
import { REPEAT_CAP_FACTOR } from '../rounds/repeat.js'

export interface DaemonOptions {
  home: string
  config: NodeConfig
  log: Logger
  /** Stop taking part after this many committed rounds, and keep serving peers. */
  maxRounds?: number
  /** Decides which peers may connect (see p2p/node.ts). */
  connectionGater?: ConnectionGater
  /** How long a starting node listens for the swarm before training (default 3 s). */
  startupListenMs?: number
  /** Fault injection: lose or repeat received gossip (drills and tests). */
  gossipFaults?: GossipFaults
  /** libp2p transport (default tcp); 'memory' runs many nodes in one process (src/sim). */
  transport?: 'tcp' | 'memory'
  /** How often the node repeats its current gossip messages (default 2 s). */
  republishMs?: number
}

/**
 * The composition root of a node: loads home, identity, swarm, data and stores; starts libp2p,
 * the content protocol, gossip, the API and the round loop; stops all of it on signal.
 */
export class Daemon {
  readonly layout: HomeLayout
  private node?: SwarmLibp2p
  private api?: ApiServer
  private keeper?: PeerKeeper
  private gossip?: SwarmGossip
  private content?: ContentProtocol
  private readonly abort = new AbortController()
  private readonly bans = new BanList()
  status!: NodeStatus

  constructor(private readonly o: DaemonOptions) {
    this.layout = new HomeLayout(o.home)
  }

  async run(): Promise<void> {
    const { config } = this.o
    // Metrics, round history and warnings for the API; warnings are captured from this logger.
    const telemetry = new NodeTelemetry(() => this.snapshot())
    const log = telemetry.logger(this.o.log)
    const L = this.layout
    await this.lock()
    try {
      // Before anything else: an API reachable from the network without a token is refused.
      const apiToken = await apiTokenFor(L.root, config.api)
      const { def, id: swarmId } = await loadSwarmDefinition(L.swarm)
      const key = await loadIdentity(L.identity)
      const peerId = peerIdOf(key)
      log.info({ peerId, swarm: swarmId, name: def.name, home: L.root }, 'starting node')

      // Data first: a bad file should fail fast, before joining anything.
      const dataPath = L.resolve(config.data.train)
      const loaded = await loadExamples(dataPath)
      const { train, eval: held } = splitHeldOut(loaded.examples, config.data.evalFraction, 20221202)
      log.info({ file: dataPath, train: train.length, eval: held.length, labels: loaded.labels.length }, 'loaded local data')

      const backend = await selectBackend({ prefer: config.backend as BackendPreference, log })
      if (config.fusionThreads !== undefined) setFusionThreads(config.fusionThreads)
      startFusionHelpers()

      const checkpoints = new ContentStore(L.checkpoints, 'safetensors')
      const deltas = new ContentStore(L.deltas, 'cfd')
      await this.ensureGenesis(def, checkpoints)
      const ledger = await Ledger.open(L.ledger, def.model.base.hash, log)

      this.status = {
        peerId, swarm: swarmId, swarmName: def.name, round: ledger.headRound(), baseHash: ledger.headHash(), phase: 'starting',
        working: ledger.headRound() + 1, peers: [], members: [], addrs: [], backend: backend.name, fusionThreads: fusionThreads(), divergence: [], rejected: {},
        transfer: { bytesIn: 0, bytesOut: 0, served: 0, fetched: 0 }, startedAt: new Date().toISOString(),
      }

      const topics = swarmTopics(swarmId)
      // With an allowlist, this node itself is always allowed.
      const allow = config.network.allowPeers.length > 0 ? [...config.network.allowPeers, peerId] : undefined
      this.node = await createSwarmLibp2p({
        privateKey: key, listen: config.listen, announce: config.announce, mdns: config.mdns,
        connectionGater: this.bans.gater(allow ? allowlistGater(allow, this.o.connectionGater) : this.o.connectionGater),
        swarmKey: config.network.swarmKeyFile ? await loadSwarmKey(L.resolve(config.network.swarmKeyFile)) : undefined,
        transport: this.o.transport,
      })
      const node = this.node
      this.content = new ContentProtocol(node, topics.fetchProtocol, async (kind, id) => {
        if (kind === 'delta') return deltas.get(id)
        if (kind === 'checkpoint') return checkpoints.get(id)
        const rec = ledger.recordFor(id)
        return rec ? new TextEncoder().encode(JSON.stringify(rec)) : undefined
      }, log)
      this.content.meter = telemetry.metrics
      await this.content.start()
      // A far member's hello repeats at least every REPEAT_CAP_FACTOR periods: four of them missed, it is gone.
      this.gossip = new SwarmGossip(node, topics, swarmId, log, allow ? new Set(allow) : undefined, this.bans, Math.max(120_000, 4 * REPEAT_CAP_FACTOR * (this.o.republishMs ?? 2000)))
      this.gossip.meter = telemetry.metrics
      const keeper = new PeerKeeper(node, config.bootstrap, log, config.maxPeers)
      this.keeper = keeper
      // A far holder (sparse swarm) is dialed through the addresses its gossip gave, and let go after.
      this.content.addressesOf = (peer) => keeper.addressesOf(peer)
      this.content.fetchedFar = (peer) => keeper.releaseFar(peer)
      const addrs = (): string[] => node.getMultiaddrs().map((m) => m.toString())

      const layoutBase = decodeSafetensors((await checkpoints.get(def.model.base.hash))!, 'genesis').tensors
      const feedback = await loadErrorFeedback(def, join(L.root, 'feedback.safetensors'), layoutBase, log)
      const ports = fusionPorts(def, layoutBase, feedback)
      try {
        await repairCheckpoints(ledger, checkpoints, deltas, ports, log)
      } catch (err) {
        throw new UserError(`${L.root}: the committed state cannot be verified (${(err as Error).message}); move ledger.jsonl away to resync from the swarm`)
      }
      const tokenizer = await loadSwarmTokenizer(def, L.root)
      const trainer = new NodeTrainer(def, { train, eval: held, numLabels: loaded.labels.length }, L.head, peerId, log, tokenizer)
      await trainer.init()
      const runner = new RoundRunner({
        def, swarmId, peerId, ledger, checkpoints, deltas, gossip: this.gossip, content: this.content, keeper: this.keeper,
        trainer, fusion: ports, status: this.status, log, maxRounds: this.o.maxRounds, myAddrs: addrs, startupListenMs: this.o.startupListenMs, republishMs: this.o.republishMs,
        metrics: telemetry.metrics,
      })
      await runner.init()
      const deliver = (msg: Parameters<typeof runner.onGossip>[0], from: string): void => runner.onGossip(msg, from)
      this.gossip.start(this.o.gossipFaults ? withGossipFaults(deliver, this.o.gossipFaults) : deliver)
      this.keeper.start()

      this.api = new ApiServer({ status: () => this.snapshot(), rounds: () => ledger.all(), telemetry }, log, { token: apiToken })
      const url = await this.api.listen(config.api.host, config.api.port)
      await writeFileAtomic(L.apiFile, JSON.stringify({ url, pid: process.pid, peerId }) + '\n')
      const helperProblem = fusionHelperProblem()
      if (helperProblem) {
        log.warn({ problem: helperProblem }, 'fusion helper threads unavailable; fusing on one thread')
        this.status.fusionThreads = 1
      }
      log.info({ addrs: addrs(), api: url, backend: backend.name, fusionThreads: this.status.fusionThreads }, 'node is up')

      await runner.run(this.abort.signal).catch((err) => {
        if (this.abort.signal.aborted) return
        throw err
      })
    } finally {
      await this.shutdown()
    }
  }

  /** The libp2p host, once started (for tests that cut links). */
  get libp2p(): SwarmLibp2p | undefined {
    return this.node
  }

  /** Ask the node to stop (SIGINT/SIGTERM): the round loop ends, then everything closes. */
  stop(reason = 'stop requested'): void {
    if (this.abort.signal.aborted) return
    this.o.log.info({ reason }, 'stopping')
    if (this.status) this.status.phase = 'stopping'
    this.abort.abort(new Error(reason))
  }

  private snapshot(): NodeStatus {
    const s = this.status
    s.peers = this.keeper?.connectedPeers() ?? []
    s.members = this.gossip?.members() ?? []
    s.addrs = this.node?.getMultiaddrs().map((m) => m.toString()) ?? []
    s.rejected = Object.fromEntries(this.gossip?.rejected ?? [])
    s.banned = this.bans.banned()
    if (this.content) s.transfer = { ...this.content.stats }
    return s
  }

  /** Round 0's base: regenerated from the swarm's seed and checked against its hash. */
  private async ensureGenesis(def: SwarmDefinition, checkpoints: ContentStore): Promise<void> {
    if (await checkpoints.has(def.model.base.hash)) {
      await checkpoints.get(def.model.base.hash) // verifies the bytes against the name
      return
    }
    const bytes = regenerateGenesis(def)
    if (!bytes) {
      throw new UserError(`the swarm's base checkpoint ${def.model.base.hash} is not in ${this.layout.checkpoints}; copy it there (as ${def.model.base.hash}.safetensors)`)
    }
    await checkpoints.put(bytes, def.model.base.hash)
    this.o.log.info({ hash: def.model.base.hash }, 'generated the round-0 base from the swarm seed')
  }

  /** One daemon per home: a second one would corrupt the ledger. */
  private async lock(): Promise<void> {
    const L = this.layout
    await mkdir(L.run, { recursive: true })
    try {
      const pid = Number((await readFile(L.lockFile, 'utf8')).trim())
      if (pid && pid !== process.pid && isAlive(pid)) {
        throw new UserError(`another coldfusiond (pid ${pid}) is running with home ${L.root}; stop it first`)
      }
    } catch (err) {
      if (err instanceof UserError) throw err
    }
    await writeFileAtomic(L.lockFile, `${process.pid}\n`)
  }

  private async shutdown(): Promise<void> {
    this.keeper?.stop()
    try {
      this.gossip?.stop()
    } catch {
      // already stopped
    }
    await this.api?.close().catch(() => {})
    await this.content?.stop().catch(() => {})
    await Promise.resolve(this.node?.stop()).catch(() => {})
    await unlink(this.layout.apiFile).catch(() => {})
    await unlink(this.layout.lockFile).catch(() => {})
    this.o.log.info('node stopped')
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}
