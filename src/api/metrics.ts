import { performance } from 'node:perf_hooks'
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { GossipMessage } from '../p2p/messages.js'
import type { NodeStatus, Phase } from '../rounds/status.js'
import type { LedgerEntry } from '../store/ledger.js'
import type { SwarmHistory } from './history.js'

/** What the p2p layer reports: bytes on the wire by kind, and how long fetches take. */
export interface TransferMeter {
  sent(kind: string, bytes: number): void
  received(kind: string, bytes: number): void
  /** A content fetch finished (ok: verified bytes arrived). */
  fetched(kind: string, seconds: number, ok: boolean): void
}

/** Phases that are steps of a round; the others ('done', 'stopping', ...) are states of the node. */
const ROUND_PHASES: ReadonlySet<Phase> = new Set<Phase>(['syncing', 'training', 'collecting', 'stalled', 'voting', 'fusing', 'committing'])
const ALL_PHASES: readonly Phase[] = ['starting', 'syncing', 'training', 'collecting', 'stalled', 'voting', 'fusing', 'committing', 'done', 'stopping', 'stopped']

/**
 * The node's Prometheus metrics (prom-client, one registry per node so several daemons can share
 * a process). The round loop and the p2p layer report events; gauges that mirror the node's
 * status are read from it when Prometheus scrapes.
 */
export class NodeMetrics implements TransferMeter {
  readonly registry = new Registry()
  readonly roundsCommitted: Counter<'kind'>
  readonly roundSeconds: Histogram
  readonly phaseSeconds: Histogram<'phase'>
  readonly bytesSent: Counter<'kind'>
  readonly bytesReceived: Counter<'kind'>
  readonly fetchSeconds: Histogram<'kind' | 'result'>
  readonly trainStepSeconds: Histogram
  readonly trainSamplesPerSecond: Gauge
  readonly divergence: Counter<'action'>
  readonly forkChoice: Counter<'outcome'>
  readonly evalAccuracy: Gauge<'stage'>

  private current?: { phase: Phase; since: number }
  private roundStart?: { round: number; at: number }
  private lastStep?: number

  constructor(
    private readonly status: () => NodeStatus,
    private readonly history?: SwarmHistory,
    opts: { processMetrics?: boolean } = {},
  ) {
    const registers = [this.registry]
    const p = 'coldfusiond_'
    this.roundsCommitted = new Counter({ name: `${p}rounds_committed_total`, help: 'Rounds this node committed (kind=commit: fused itself; kind=switch: adopted from the swarm by fork choice)', labelNames: ['kind'], registers })
    this.roundSeconds = new Histogram({ name: `${p}round_duration_seconds`, help: 'Time from the start of local training to the commit of a round', buckets: [1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600], registers })
    this.phaseSeconds = new Histogram({ name: `${p}round_phase_duration_seconds`, help: 'Time spent in each phase of a round', labelNames: ['phase'], buckets: [0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900], registers })
    this.bytesSent = new Counter({ name: `${p}sent_bytes_total`, help: 'Bytes sent to peers, by kind (delta, checkpoint, record: content served; announce, vote, commit: gossip published, times recipients)', labelNames: ['kind'], registers })
    this.bytesReceived = new Counter({ name: `${p}received_bytes_total`, help: 'Bytes received from peers, by kind (delta, checkpoint, record: content fetched and verified; announce, vote, commit: gossip delivered)', labelNames: ['kind'], registers })
    this.fetchSeconds = new Histogram({ name: `${p}fetch_duration_seconds`, help: 'Latency of content fetches from peers (dial to verified bytes), by kind and result (error: refused, failed or invalid after the dial)', labelNames: ['kind', 'result'], buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60], registers })
    this.trainStepSeconds = new Histogram({ name: `${p}training_step_duration_seconds`, help: 'Wall time of one local training step (one batch)', buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers })
    this.trainSamplesPerSecond = new Gauge({ name: `${p}training_samples_per_second`, help: 'Training throughput over the last step (examples per second)', registers })
    this.divergence = new Counter({ name: `${p}divergence_events_total`, help: 'Base divergences: detected (a peer committed another base), switched (adopted the swarm\'s base), kept', labelNames: ['action'], registers })
    this.forkChoice = new Counter({ name: `${p}fork_choice_total`, help: 'Fork choice picked another base than ours: adopted (lineage recomputed and verified) or failed (retried later)', labelNames: ['outcome'], registers })
    this.evalAccuracy = new Gauge({ name: `${p}eval_accuracy`, help: 'Eval metric of the last committed round on local held-out data (stage: before, local, after fusion)', labelNames: ['stage'], registers })

    // Known label values start at 0, so rates and alerts work before the first event.
    for (const kind of ['commit', 'switch']) this.roundsCommitted.inc({ kind }, 0)
    for (const action of ['detected', 'switched', 'kept']) this.divergence.inc({ action }, 0)
    for (const outcome of ['adopted', 'failed']) this.forkChoice.inc({ outcome }, 0)

    const metrics = this
    new Gauge({ name: `${p}round`, help: 'Last committed round', registers, collect() { this.set(metrics.status().round) } })
    new Gauge({ name: `${p}connected_peers`, help: 'Peers with an open connection', registers, collect() { this.set(metrics.status().peers.length) } })
    new Gauge({ name: `${p}swarm_members`, help: 'Swarm members heard on gossip', registers, collect() { this.set(metrics.status().members.length) } })
    new Gauge({
      name: `${p}phase`, help: 'Current phase of the node (1 for the current one)', labelNames: ['phase'], registers,
      collect() {
        const now = metrics.status().phase
        for (const ph of ALL_PHASES) this.set({ phase: ph }, ph === now ? 1 : 0)
      },
    })
    new Gauge({
      name: `${p}backend_info`, help: 'TensorFlow.js backend in use (value 1)', labelNames: ['backend'], registers,
      collect() {
        this.reset()
        this.set({ backend: metrics.status().backend }, 1)
      },
    })
    new Gauge({
      name: `${p}node_info`, help: 'This node (value 1)', labelNames: ['peer_id', 'swarm'], registers,
      collect() {
        const s = metrics.status()
        this.reset()
        this.set({ peer_id: s.peerId, swarm: s.swarm }, 1)
      },
    })
    // The gossip layer keeps the rejection counts (in its topic validators); mirror them.
    new Counter({
      name: `${p}gossip_rejected_total`, help: 'Gossip messages rejected before delivery, by reason (schema, wrong-swarm, unsigned, not-allowed, ...)', labelNames: ['reason'], registers,
      collect() {
        this.reset()
        for (const [reason, n] of Object.entries(metrics.status().rejected)) this.inc({ reason }, n)
      },
    })
    if (opts.processMetrics ?? true) collectDefaultMetrics({ register: this.registry })
  }

  /** The exposition text and its content type. */
  async expose(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() }
  }

  /** The round loop entered `phase` while working on `round`. */
  phase(round: number, phase: Phase): void {
    const now = performance.now()
    const prev = this.current
    if (prev && ROUND_PHASES.has(prev.phase)) this.phaseSeconds.observe({ phase: prev.phase }, (now - prev.since) / 1000)
    this.current = { phase, since: now }
    if (phase === 'training' && this.roundStart?.round !== round) this.roundStart = { round, at: now }
    this.lastStep = undefined
    this.history?.phase(round, phase)
  }

  /** A local training step finished (steps count from 1). */
  trainingStep(step: number, batchSize: number): void {
    const now = performance.now()
    // The first step's interval would include the evaluation before training: skip it.
    if (this.lastStep !== undefined && step > 1) {
      const s = (now - this.lastStep) / 1000
      this.trainStepSeconds.observe(s)
      if (s > 0) this.trainSamplesPerSecond.set(batchSize / s)
    }
    this.lastStep = now
  }

  /** This node appended a ledger entry it fused itself. */
  committed(entry: LedgerEntry): void {
    this.roundsCommitted.inc({ kind: entry.kind })
    let seconds: number | undefined
    if (this.roundStart?.round === entry.round) {
      seconds = (performance.now() - this.roundStart.at) / 1000
      this.roundSeconds.observe(seconds)
      this.roundStart = undefined
    }
    const l = entry.local
    for (const [stage, v] of [['before', l?.evalBefore], ['local', l?.evalLocal], ['after', l?.evalAfter]] as const) {
      if (v !== undefined && Number.isFinite(v)) this.evalAccuracy.set({ stage }, v)
    }
    this.history?.committed(entry.round, seconds)
  }

  /** Fork choice moved this node to the swarm's base, adopting `rounds` verified rounds. */
  adopted(rounds: number): void {
    this.forkChoice.inc({ outcome: 'adopted' })
    this.roundsCommitted.inc({ kind: 'switch' }, rounds)
  }

  /** A verified gossip message (for the dashboard's history). */
  heard(msg: GossipMessage, from: string): void {
    this.history?.heard(msg, from)
  }

  sent(kind: string, bytes: number): void {
    if (bytes > 0) this.bytesSent.inc({ kind }, bytes)
  }

  received(kind: string, bytes: number): void {
    if (bytes > 0) this.bytesReceived.inc({ kind }, bytes)
  }

  fetched(kind: string, seconds: number, ok: boolean): void {
    this.fetchSeconds.observe({ kind, result: ok ? 'ok' : 'error' }, seconds)
  }
}
