import type { SwarmDefinition } from '../config/swarm.js'
import type { TensorMap } from '../model/tensors.js'
import type { Contribution, Ledger, LedgerEntry, LocalMetrics } from '../store/ledger.js'
import type { ContentStore } from '../store/content-store.js'
import type { ContentProtocol } from '../p2p/fetch.js'
import type { SwarmGossip } from '../p2p/gossip.js'
import type { Announce, Commit, GossipMessage, Hello, Vote } from '../p2p/messages.js'
import type { PeerKeeper } from '../p2p/dialer.js'
import type { Logger } from '../util/log.js'
import { PayloadError } from '../util/errors.js'
import { RoundBook } from './book.js'
import { HeldAdvertiser } from './held.js'
import { HolderPicker } from '../p2p/holders.js'
import { chooseFork, missingVoters, selectContributors, unionOfVotes } from './agreement.js'
import { LineageSync } from './sync.js'
import { Waker } from './wait.js'
import { REPEAT_CAP_FACTOR, RepeatSchedule } from './repeat.js'
import type { NodeStatus, Phase } from './status.js'
import type { NodeMetrics } from '../api/metrics.js'

/** Local training, seen from the round protocol. */
export interface LocalTrainer {
  /** Fine-tune body + local head from `base`; keeps the new head pending until commitHead. */
  train(base: TensorMap, round: number, onStep: (step: number, total: number) => void, signal: AbortSignal): Promise<{
    body: TensorMap
    examples: number
    loss: number
    seconds: number
    evalBefore: number
    evalLocal: number
  }>
  /** Accuracy of `base` with the head trained this round (or the current head). */
  evaluate(base: TensorMap): Promise<number>
  /** Persist the head trained this round (called after the round commits). */
  commitHead(): Promise<void>
  /** Forget the head trained this round (the round was abandoned). */
  discardHead(): void
}

/** The codec and fusion rule the swarm definition selects. */
export interface FusionPorts {
  encodeDelta(delta: TensorMap, meta: { round: number; baseHash: string; examples: number }): Uint8Array
  /** Check a fetched payload (container, checksum, layout) before it is accepted. */
  checkDelta(payload: Uint8Array, expect: { round: number; baseHash: string }): void
  /**
   * Fuse the deltas (payloads, or their files in the delta store) into `base`, whose hash is
   * `baseHash` (computed when omitted); the result is written into `into` when given (a base no
   * longer read, whose memory is already mapped).
   */
  fuse(base: TensorMap, deltas: ({ id: string; examples: number; payload: Uint8Array } | { id: string; examples: number; file: string })[], baseHash?: string, into?: TensorMap): TensorMap
  /** After the round is decided: keep (fused) or forget the error-feedback residual staged for our delta. */
  settleDelta?(id: string, fused: boolean): Promise<void>
  encodeBase(base: TensorMap): Uint8Array
  decodeBase(bytes: Uint8Array): TensorMap
}

export interface RunnerDeps {
  def: SwarmDefinition
  swarmId: string
  peerId: string
  ledger: Ledger
  checkpoints: ContentStore
  deltas: ContentStore
  gossip: SwarmGossip
  content: ContentProtocol
  keeper: PeerKeeper
  trainer: LocalTrainer
  fusion: FusionPorts
  status: NodeStatus
  log: Logger
  /** Stop taking part after this many committed rounds (keep serving peers). */
  maxRounds?: number
  /** First repeat period of our own gossip after a change (doubles while unchanged, up to 8x). */
  republishMs?: number
  /** How long a starting node listens for the swarm's position before training. */
  startupListenMs?: number
  myAddrs: () => string[]
  /** Prometheus metrics and the dashboard's history (optional: tests run without). */
  metrics?: NodeMetrics
}

class SwitchedBase extends Error {}

type Trained = { trained: Awaited<ReturnType<LocalTrainer['train']>>; deltaId: string }

/**
 * The round loop: train, announce, collect, vote, fuse, commit, repeat. Every step that waits
 * has a deadline from the swarm definition; every state change is logged and shown in status.
 */
export class RoundRunner {
  private readonly book = new RoundBook()
  private readonly waker = new Waker()
  private readonly inflight = new Set<string>()
  private readonly failedFetch = new Map<string, number>()
  private readonly holders: HolderPicker
  private readonly advertiser: HeldAdvertiser
  private base!: TensorMap
  /** The base the current one replaced: nothing reads it any more, so the next fusion writes into it. */
  private spare?: TensorMap
  private baseHash!: string
  private round = 0
  private myAnnounce?: Announce
  private myVote?: Vote
  private lastCommit?: Commit
  private republish?: NodeJS.Timeout
  /** One repeat schedule per kind of own message, so a new vote does not bring the commit's repeats back. */
  private readonly repeats: Record<'announce' | 'vote' | 'commit' | 'hello', RepeatSchedule>

  private readonly sync: LineageSync

  constructor(private readonly d: RunnerDeps) {
    this.holders = new HolderPicker(d.peerId, (peer) => d.keeper.isConnected(peer))
    this.advertiser = new HeldAdvertiser(
      (round, base) => this.heldDeltas(round, base).map((c) => c.id),
      (round, base, deltas) => void this.publish({ type: 'have', v: 1, swarm: this.d.swarmId, round, base, deltas }),
    )
    const period = d.republishMs ?? 2000
    const schedule = () => new RepeatSchedule(period, REPEAT_CAP_FACTOR * period)
    // A hello starts from the default period whatever the swarm's: far members must learn of a
    // joiner before the next draw.
    this.repeats = { announce: schedule(), vote: schedule(), commit: schedule(), hello: new RepeatSchedule(Math.min(period, 2000), REPEAT_CAP_FACTOR * period) }
    this.sync = new LineageSync({
      ledger: d.ledger, checkpoints: d.checkpoints, deltas: d.deltas, content: d.content, holders: this.holders, fusion: d.fusion,
      maxDeltaBytes: d.def.rounds.maxDeltaBytes, rule: d.def.fusion.rule, log: d.log,
    })
  }

  /** Load the current base from the ledger head (it must already be in the checkpoint store). */
  async init(): Promise<void> {
    this.baseHash = this.d.ledger.headHash()
    const bytes = await this.d.checkpoints.get(this.baseHash)
    if (!bytes) throw new Error(`checkpoint ${this.baseHash} of the ledger head is missing from ${this.d.checkpoints.dir}`)
    this.base = this.d.fusion.decodeBase(bytes)
    this.updateStatus({ round: this.d.ledger.headRound(), baseHash: this.baseHash })
    const head = this.d.ledger.head()
    if (head) {
      this.lastCommit = commitOf(this.d.swarmId, head)
    }
  }

  onGossip(msg: GossipMessage, from: string): void {
    this.d.log.debug({ type: msg.type, round: msg.round, from }, 'gossip received')
    if (msg.type === 'have') {
      this.book.addHave(msg.round, msg.base, from, msg.deltas)
      return
    }
    if (msg.type === 'hello') {
      // Membership is the gossip layer's; here we only learn where the member can be dialed.
      this.d.keeper.learn(from, msg.addrs)
      return
    }
    this.d.metrics?.heard(msg, from)
    switch (msg.type) {
      case 'announce':
        if (!this.book.addAnnounce(msg.round, msg.base, { id: msg.deltaId, peer: from, examples: msg.examples }, msg.size, from)) {
          this.d.log.warn({ from, round: msg.round }, 'ignored a second, different delta announced by the same peer for one round')
          break
        }
        this.d.keeper.learn(from, msg.addrs)
        break
      case 'vote':
        this.book.addVote(msg.round, msg.base, from, msg.deltas)
        break
      case 'commit':
        this.book.addCommit(msg.round, msg.base, from, msg.hash, msg.rule, msg.contributors)
        this.checkCommit(msg, from)
        break
    }
    this.waker.wake()
  }

  async run(signal: AbortSignal): Promise<void> {
    const tick = Math.min(250, this.d.republishMs ?? 2000)
    this.republish = setInterval(() => void this.republishOwn(), tick)
    // A peer that just joined the topic has heard nothing yet: repeat soon for it.
    this.d.gossip.onJoin(() => Object.values(this.repeats).forEach((r) => r.reset()))
    this.d.gossip.onNewMember(() => {
      this.membersChangedAt = Date.now()
    })
    void this.publish(this.hello())
    try {
      // A starting node first listens for where the swarm is (restart, late join), so it does
      // not train on a base the swarm has left.
      this.round = this.d.ledger.headRound() + 1
      this.setPhase('syncing')
      await this.waker.until(() => this.book.rounds().length > 0, { signal, deadline: Date.now() + (this.d.startupListenMs ?? 3000), pollMs: 250 })
      try {
        await this.maybeSync(signal)
      } catch (err) {
        if (!(err instanceof SwitchedBase)) throw err
      }
      while (!signal.aborted) {
        const committed = this.d.ledger.headRound()
        if (this.d.maxRounds !== undefined && committed >= this.d.maxRounds) {
          this.setPhase('done')
          this.d.log.info({ round: committed, base: this.baseHash }, 'reached the requested number of rounds; serving peers until stopped')
          try {
            await this.followUntilStopped(committed, this.d.maxRounds, signal)
          } catch (err) {
            if (err instanceof SwitchedBase) continue
            throw err
          }
          return
        }
        try {
          await this.runRound(committed + 1, signal)
        } catch (err) {
          if (err instanceof SwitchedBase) continue
          throw err
        }
      }
    } finally {
      clearInterval(this.republish)
      this.advertiser.stop()
    }
  }

  private async runRound(round: number, signal: AbortSignal): Promise<void> {
    const { def, log } = this.d
    this.round = round
    this.myAnnounce = undefined
    this.myVote = undefined
    this.book.prune(round - 2)
    const base = this.baseHash
    this.updateStatus({ working: round, progress: undefined })
    const rlog = log.child({ round, base: base.slice(0, 12) })

    // 1. Train locally on the current base, if this node is drawn to (or every node trains).
    const drawn = await this.drawnContributors(round, base, signal)
    let mine: Trained | undefined
    if (!drawn || drawn.has(this.d.peerId)) {
      mine = await this.trainAndAnnounce(round, base, rlog, signal)
    } else {
      rlog.info({ drawn: drawn.size }, 'round started: not drawn to train this round; collecting the drawn contributors\' deltas')
    }
    const trained = mine?.trained
    const deltaId = mine?.deltaId

    // 2. Collect the others' deltas until everyone we hear has contributed, or the deadline.
    this.setPhase('collecting')
    const collectDeadline = Date.now() + def.rounds.collectTimeoutSec * 1000
    let stalledLogged = false
    const enough = (): boolean => this.heldDeltas(round, base).length >= def.rounds.minContributors
    while (true) {
      const ready = await this.waker.until(() => {
        this.fetchMissing(round, base, signal)
        return enough() && this.collectComplete(round, base, drawn)
      }, { deadline: collectDeadline, signal, pollMs: 250 })
      if (ready) break
      if (enough()) {
        rlog.warn({ have: this.heldDeltas(round, base).length, members: this.d.gossip.members().length + 1 }, 'collect deadline: closing with the deltas at hand')
        break
      }
      if (!stalledLogged) {
        rlog.warn({ have: this.heldDeltas(round, base).length, min: def.rounds.minContributors }, 'round stalled: fewer contributors than the swarm minimum; waiting for more (the base does not change until enough arrive)')
        this.setPhase('stalled')
        stalledLogged = true
      }
      await this.waker.until(() => {
        this.fetchMissing(round, base, signal)
        return enough()
      }, { signal, pollMs: 1000, deadline: Date.now() + 5000 })
      await this.maybeSync(signal)
    }
    // A swarm that moved on (or built this round on another base) wins over our own round.
    await this.maybeSync(signal)

    // 3. Vote the set we hold; the round's set is the union of the votes.
    this.setPhase('voting')
    const voteDeadline = Date.now() + def.rounds.voteTimeoutSec * 1000
    this.myVote = { type: 'vote', v: 1, swarm: this.d.swarmId, round, base, deltas: this.heldDeltas(round, base) }
    await this.publishOwn(this.myVote)
    let votedAt = Date.now()
    await this.waker.until(() => {
      this.fetchMissing(round, base, signal)
      const union = this.union(round, base)
      const held = new Set(this.heldDeltas(round, base).map((c) => c.id))
      const grown = union.filter((c) => held.has(c.id))
      // Tell the others what we now hold, so their unions converge on ours; at most once a
      // second while fetches complete one by one (each vote is O(N) bytes to every node).
      if (grown.length > this.myVote!.deltas.length && Date.now() - votedAt >= 1000) {
        this.myVote = { ...this.myVote!, deltas: grown }
        votedAt = Date.now()
        void this.publishOwn(this.myVote)
      }
      const voters = new Set(this.book.view(round, base).votes.keys())
      voters.add(this.d.peerId)
      return union.every((c) => held.has(c.id)) && missingVoters(union, voters).length === 0
    }, { deadline: voteDeadline, signal, pollMs: 250 })
    const union = this.union(round, base)
    const held = new Set(this.heldDeltas(round, base).map((c) => c.id))
    const final = union.filter((c) => held.has(c.id))
    if (final.length > this.myVote.deltas.length) {
      this.myVote = { ...this.myVote, deltas: final }
      void this.publishOwn(this.myVote)
    }
    if (final.length < union.length) {
      rlog.warn({ missing: union.filter((c) => !held.has(c.id)).map((c) => c.id.slice(0, 12)) }, 'vote deadline: some voted deltas could not be fetched; fusing without them (divergence, if any, is repaired by fork choice next round)')
    }
    const voters = new Set(this.book.view(round, base).votes.keys())
    voters.add(this.d.peerId)
    const silent = missingVoters(final, voters)
    if (silent.length > 0) rlog.warn({ silent }, 'vote deadline: no vote from some contributors')

    // 4. Fuse deterministically and 5. commit.
    this.setPhase('fusing')
    const entry = await this.fuseAndCommit(round, base, final, 'commit', {
      evalBefore: trained?.evalBefore, evalLocal: trained?.evalLocal, trainLoss: trained?.loss, trainSeconds: trained?.seconds,
      contributed: final.some((c) => c.id === deltaId),
    })
    if (deltaId) await this.d.fusion.settleDelta?.(deltaId, final.some((c) => c.id === deltaId))
    rlog.info({ hash: entry.hash.slice(0, 12), contributors: final.length, evalAfter: entry.local?.evalAfter }, 'round committed')
  }

  /** Train on `base`, store and announce our delta. */
  private async trainAndAnnounce(round: number, base: string, rlog: Logger, signal: AbortSignal): Promise<Trained> {
    const { def } = this.d
    this.setPhase('training')
    rlog.info('round started: training on local data')
    let logged = 0
    const trained = await this.d.trainer.train(this.base, round, (step, total) => {
      this.updateStatus({ progress: { step, total } })
      this.d.metrics?.trainingStep(step, def.training.batchSize)
      // Progress in the log at each quarter, for nodes run without a terminal.
      const quarter = Math.floor((4 * step) / total)
      if (quarter > logged) {
        logged = quarter
        rlog.info({ step, total }, 'training')
      }
    }, signal)
    const delta = subtractBody(trained.body, this.base)
    const payload = this.d.fusion.encodeDelta(delta, { round, baseHash: base, examples: trained.examples })
    const deltaId = await this.d.deltas.put(payload)
    rlog.info({ deltaId: deltaId.slice(0, 12), bytes: payload.length, loss: trained.loss, seconds: trained.seconds, evalBefore: trained.evalBefore, evalLocal: trained.evalLocal }, 'trained; announcing delta')
    const own: Contribution = { id: deltaId, peer: this.d.peerId, examples: trained.examples }
    this.book.addAnnounce(round, base, own, payload.length, this.d.peerId)
    this.myAnnounce = {
      type: 'announce', v: 1, swarm: this.d.swarmId, round, base, deltaId, size: payload.length,
      examples: trained.examples, addrs: this.d.myAddrs().slice(0, 8), loss: Number.isFinite(trained.loss) ? trained.loss : undefined,
    }
    await this.publishOwn(this.myAnnounce)

    return { trained, deltaId }
  }

  /** When a member was last new to us (a joiner, or the author of relayed gossip): a stable view needs no wait before a draw. */
  private membersChangedAt = Date.now()

  /**
   * This round's drawn contributors when the swarm bounds them (undefined: every node trains).
   * The draw first waits (at most 30 s) until no member has been new to us for 5 s: a node still
   * connecting at start-up hears only part of the swarm, and drawing from part of it would make
   * it train when it should not. (With no newcomer, as in most rounds, it does not wait.)
   */
  private async drawnContributors(round: number, base: string, signal: AbortSignal): Promise<Set<string> | undefined> {
    const k = this.d.def.rounds.contributorsPerRound
    if (k === undefined) return undefined
    await this.waker.until(() => Date.now() - this.membersChangedAt >= 5000, { signal, deadline: Date.now() + 30_000, pollMs: 250 })
    return selectContributors(round, base, [this.d.peerId, ...this.d.gossip.members()], k)
  }

  private async fuseAndCommit(round: number, parent: string, set: Contribution[], kind: 'commit' | 'switch', local: LocalMetrics): Promise<LedgerEntry> {
    // Fusion reads each delta from its file in the store, piece by piece (and checks it against its
    // id as it reads): memory does not grow with the number of deltas.
    const inputs: { id: string; file: string; examples: number }[] = []
    for (const c of set) {
      if (!(await this.d.deltas.has(c.id))) throw new Error(`delta ${c.id} vanished from the store`)
      inputs.push({ id: c.id, file: this.d.deltas.path(c.id), examples: c.examples })
    }
    const parentBase = parent === this.baseHash ? this.base : this.d.fusion.decodeBase((await this.d.checkpoints.get(parent))!)
    // Taken, not shared: if fusion fails half-way, the half-written spare is dropped.
    const into = this.spare
    this.spare = undefined
    const next = this.d.fusion.fuse(parentBase, inputs, parent, into)
    const bytes = this.d.fusion.encodeBase(next)
    this.setPhase('committing')
    const hash = await this.d.checkpoints.put(bytes)
    if (kind === 'commit') {
      local.evalAfter = await this.d.trainer.evaluate(next)
    }
    // The checkpoint is durable before the ledger names it; the head follows the ledger.
    const entry = await this.d.ledger.append({ round, parent, hash, deltas: set, rule: this.d.def.fusion.rule, kind, local })
    this.d.metrics?.committed(entry)
    if (kind === 'commit') await this.d.trainer.commitHead()
    else this.d.trainer.discardHead()
    this.replaceBase(next, hash)
    this.lastCommit = commitOf(this.d.swarmId, entry)
    this.updateStatus({ round, baseHash: hash, lastMetrics: { evalBefore: local.evalBefore, evalLocal: local.evalLocal, evalAfter: local.evalAfter } })
    await this.publishOwn(this.lastCommit)
    return entry
  }

  /**
   * Collect is complete when every swarm member we hear has a verified delta on this base; with
   * bounded contributors, when we hold as many deltas as were drawn, or one from every drawn member.
   */
  private collectComplete(round: number, base: string, drawn?: Set<string>): boolean {
    const view = this.book.view(round, base)
    const heldDeltas = this.heldDeltas(round, base)
    if (drawn && heldDeltas.length >= drawn.size) return true
    const held = new Set(heldDeltas.map((c) => c.peer))
    const others = this.book.basesOf(round)
    const members = this.d.gossip.members()
    for (const member of drawn ? members.filter((m) => drawn.has(m)) : members) {
      if (held.has(member)) continue
      // A member that announced on another base this round will not contribute to ours.
      const elsewhere = [...others].some(([b, announcers]) => b !== base && announcers.has(member))
      if (elsewhere) continue
      return false
    }
    return view.deltas.size > 0
  }

  /** Deltas of (round, base) present and verified in the local store, sorted by id. */
  private heldDeltas(round: number, base: string): Contribution[] {
    const out: Contribution[] = []
    for (const d of this.book.view(round, base).deltas.values()) {
      if (this.verified.has(d.id)) out.push({ id: d.id, peer: d.peer, examples: d.examples })
    }
    return out.sort((a, b) => (a.id < b.id ? -1 : 1))
  }

  private readonly verified = new Set<string>()

  private union(round: number, base: string): Contribution[] {
    const view = this.book.view(round, base)
    const mine = this.myVote?.deltas ?? []
    return unionOfVotes([mine, ...view.votes.values()])
  }

  /** Start fetches for every known delta of (round, base) we do not hold yet. */
  private fetchMissing(round: number, base: string, signal: AbortSignal): void {
    for (const d of this.book.view(round, base).deltas.values()) {
      if (this.verified.has(d.id) || this.inflight.has(d.id)) continue
      if (d.peer === this.d.peerId && this.myAnnounce?.deltaId === d.id) {
        this.verified.add(d.id)
        continue
      }
      const retryAt = this.failedFetch.get(d.id) ?? 0
      if (Date.now() < retryAt) continue
      this.inflight.add(d.id)
      void this.fetchOne(round, base, d.id, [...d.providers], d.size, signal).finally(() => {
        this.inflight.delete(d.id)
        this.waker.wake()
      })
    }
  }

  private async fetchOne(round: number, base: string, id: string, providers: string[], size: number, signal: AbortSignal): Promise<void> {
    const { def, log } = this.d
    const local = await this.d.deltas.get(id).catch(() => undefined)
    if (local) {
      this.verified.add(id)
      return
    }
    if (size > def.rounds.maxDeltaBytes) {
      log.warn({ deltaId: id.slice(0, 12), size }, 'announced delta is over the size limit; not fetching it')
      this.failedFetch.set(id, Number.MAX_SAFE_INTEGER)
      return
    }
    // Any holder will do (the sha256 is checked): the author, voters, and peers that advertised it.
    const holders = () => this.book.view(round, base).deltas.get(id)?.providers ?? providers
    const started = Date.now()
    try {
      const { bytes, from } = await this.holders.fetch(this.d.content, 'delta', id, holders, def.rounds.maxDeltaBytes, signal, {
        attemptMs: 60_000,
        // In a swarm larger than maxPeers the author may be far; a neighbour that fetched it soon says so.
        connectedWaitMs: 2000,
        check: (bytes) => this.d.fusion.checkDelta(bytes, { round, baseHash: base }),
        onError: (peer, err) => {
          const bad = err instanceof PayloadError && !['not-found', 'truncated', 'busy'].includes(err.reason)
          log[bad ? 'warn' : 'debug']({ deltaId: id.slice(0, 12), from: peer, err: err.message }, 'fetch failed')
        },
      })
      await this.d.deltas.putFetched(bytes, id)
      this.verified.add(id)
      this.advertiser.due(round, base)
      log.debug({ deltaId: id.slice(0, 12), from, size, ms: Date.now() - started }, 'fetched and verified delta')
      return
    } catch {
      if (signal.aborted) return
    }
    this.failedFetch.set(id, Date.now() + 1500)
  }

  /**
   * Fork choice: the base the swarm builds on is the one announced for the most advanced round,
   * then by the most distinct supporters (announcers, voters, and peers whose last commit produced it),
   * then the lowest hash. This node counts as a supporter of its own base.
   */
  private swarmHead(): { round: number; base: string; supporters: number; peers: Set<string> } | undefined {
    const candidates: { round: number; base: string; supporters: number; peers: Set<string> }[] = []
    const rounds = new Set<number>()
    for (const r of this.book.rounds()) {
      if (r >= this.round) rounds.add(r)
      if (r + 1 >= this.round) rounds.add(r + 1)
    }
    for (const round of rounds) {
      const byBase = new Map<string, Set<string>>()
      for (const [base, announcers] of this.book.basesOf(round)) byBase.set(base, new Set(announcers))
      for (const [hash, c] of this.book.commitsOf(round - 1)) {
        const set = byBase.get(hash) ?? new Set<string>()
        for (const p of c.committers) set.add(p)
        byBase.set(hash, set)
      }
      if (round === this.round) byBase.set(this.baseHash, (byBase.get(this.baseHash) ?? new Set<string>()).add(this.d.peerId))
      for (const [base, peers] of byBase) candidates.push({ round, base, supporters: peers.size, peers })
    }
    return chooseFork(candidates)
  }

  /**
   * After the requested rounds: serve peers, and still take the swarm's choice of base for those
   * rounds. Two halves of a partition that healed only as they reached the last round would
   * otherwise stay apart for good, each on its own base.
   */
  private async followUntilStopped(committed: number, lastRound: number, signal: AbortSignal): Promise<void> {
    // As at a restart: the next round is the one our base (and our own commit) supports.
    this.round = committed + 1
    while (!signal.aborted) {
      await this.waker.until(() => false, { signal, deadline: Date.now() + 1000 }).catch(() => undefined)
      if (signal.aborted) return
      await this.maybeSync(signal, lastRound).catch((err: unknown) => {
        if (!signal.aborted) throw err
      })
    }
  }

  /**
   * If the swarm builds on a base other than ours, catch up to it: fetch its lineage, recompute
   * and verify every round, append them to the ledger, and restart the round loop on it. With
   * `lastRound`, only a base of that round or earlier is taken.
   */
  private async maybeSync(signal: AbortSignal, lastRound?: number): Promise<void> {
    const head = this.swarmHead()
    if (!head || head.base === this.baseHash) return
    // head.round is the round being built on head.base, so that base ends round head.round - 1.
    if (lastRound !== undefined && head.round - 1 > lastRound) return
    const retryAt = this.unsyncable.get(head.base) ?? 0
    if (Date.now() < retryAt) return
    const providers = [...head.peers].filter((p) => p !== this.d.peerId)
    if (providers.length === 0) return
    const previous = this.baseHash
    const phase = this.d.status.phase
    this.setPhase('syncing')
    try {
      const res = await this.sync.syncTo(head.base, providers, signal)
      await this.reloadHead()
      this.d.trainer.discardHead()
      if (this.myAnnounce) await this.d.fusion.settleDelta?.(this.myAnnounce.deltaId, false)
      this.d.metrics?.adopted(res.adopted.length)
      const detail = `adopted ${res.adopted.length} round(s) from ${head.supporters} supporter(s), from common base ${res.ancestor.slice(0, 12)}`
      this.noteDivergence(this.d.ledger.headRound(), previous, head.base, 'switched', detail)
    } catch (err) {
      if (signal.aborted) throw err
      this.unsyncable.set(head.base, Date.now() + 15_000)
      this.d.metrics?.forkChoice.inc({ outcome: 'failed' })
      this.d.log.warn({ target: head.base.slice(0, 12), round: head.round, err: (err as Error).message }, 'cannot sync to the swarm\'s base yet; will retry')
      this.noteDivergence(head.round - 1, previous, head.base, 'detected', `the swarm builds on another base; sync failed: ${(err as Error).message}`)
      this.setPhase(phase)
      return
    }
    throw new SwitchedBase()
  }

  private readonly unsyncable = new Map<string, number>()

  /** The round loop is the only reader of the base (training copies it), so the old one becomes the spare. */
  private replaceBase(next: TensorMap, hash: string): void {
    if (this.base !== next) this.spare = this.base
    this.base = next
    this.baseHash = hash
  }

  /** Take the ledger head (after a sync) as the current base. */
  private async reloadHead(): Promise<void> {
    const head = this.d.ledger.head()!
    this.replaceBase(this.d.fusion.decodeBase((await this.d.checkpoints.get(head.hash))!), head.hash)
    this.lastCommit = commitOf(this.d.swarmId, head)
    this.updateStatus({ round: head.round, baseHash: head.hash })
  }

  private checkCommit(msg: Commit, from: string): void {
    const head = this.d.ledger.head()
    if (!head || msg.round !== head.round || msg.base !== head.parent) return
    if (msg.hash !== head.hash) {
      this.noteDivergence(msg.round, head.hash, msg.hash, 'detected', `peer ${from} committed round ${msg.round} to another base`)
    }
  }

  private noteDivergence(round: number, ours: string, theirs: string, action: 'detected' | 'switched' | 'kept', detail: string): void {
    const list = this.d.status.divergence
    const last = list[list.length - 1]
    if (last && last.round === round && last.theirs === theirs && last.action === action) return
    list.push({ round, at: new Date().toISOString(), ours, theirs, action, detail })
    this.d.metrics?.divergence.inc({ action })
    if (list.length > 50) list.shift()
    this.d.log.warn({ round, ours: ours.slice(0, 12), theirs: theirs.slice(0, 12), action, detail }, 'base divergence')
  }

  private async publish(msg: GossipMessage): Promise<void> {
    if (msg.type !== 'hello') this.spoke = true
    try {
      await this.d.gossip.publish(msg)
    } catch (err) {
      this.d.log.debug({ type: msg.type, err: (err as Error).message }, 'publish failed; will repeat')
    }
  }

  /** Publish a new own message (announce, vote, commit); its repeats restart from the short period. */
  private async publishOwn(msg: Announce | Vote | Commit): Promise<void> {
    this.repeats[msg.type].reset()
    await this.publish(msg)
  }

  /** Who we are, where we are, and where to dial us: for members beyond our direct peers. */
  private hello(): Hello {
    return { type: 'hello', v: 1, swarm: this.d.swarmId, round: this.d.ledger.headRound(), base: this.baseHash, addrs: this.d.myAddrs().slice(0, 8) }
  }

  /** Whether we published anything but a hello since the last hello was due. */
  private spoke = false

  /** Repeat our current messages that are due: gossip is best effort, and late joiners need them too. */
  private async republishOwn(): Promise<void> {
    // Any message makes its author known as a member: a hello is for a node with nothing else to say.
    if (this.repeats.hello.due()) {
      if (!this.spoke) await this.publish(this.hello())
      this.spoke = false
    }
    if (this.myAnnounce && this.repeats.announce.due()) await this.publish(this.myAnnounce)
    if (this.myVote && this.repeats.vote.due()) await this.publish(this.myVote)
    // Once we announce or vote on the committed base, that message speaks for the commit too.
    const onCommitted = this.myAnnounce?.base === this.lastCommit?.hash || this.myVote?.base === this.lastCommit?.hash
    if (this.lastCommit && !onCommitted && this.repeats.commit.due()) await this.publish(this.lastCommit)
  }

  private setPhase(phase: Phase): void {
    this.d.status.phase = phase
    this.d.metrics?.phase(this.round, phase)
  }

  private updateStatus(p: Partial<NodeStatus>): void {
    Object.assign(this.d.status, p)
  }
}

function commitOf(swarm: string, e: LedgerEntry): Commit {
  return { type: 'commit', v: 1, swarm, round: e.round, base: e.parent, hash: e.hash, rule: e.rule, contributors: e.deltas.length }
}

/** The body delta: fine-tuned minus base, per tensor, in float32. */
export function subtractBody(trained: TensorMap, base: TensorMap): TensorMap {
  const out: TensorMap = new Map()
  for (const [name, b] of base) {
    const t = trained.get(name)
    if (!t) throw new Error(`trained model lacks body tensor ${name}`)
    const d = new Float32Array(b.data.length)
    for (let i = 0; i < d.length; i++) d[i] = t.data[i] - b.data[i]
    out.set(name, { shape: [...b.shape], data: d })
  }
  return out
}
