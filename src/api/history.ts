import type { GossipMessage } from '../p2p/messages.js'
import type { LedgerEntry } from '../store/ledger.js'

/**
 * A bounded history of recent rounds for the dashboard: this node's phases with their times, and
 * what peers said about each round (the base their commit produced, their training loss). The
 * round book forgets rounds as soon as agreement no longer needs them; this keeps the last
 * `capacity` rounds so "which node is on which hash" stays visible. Everything a peer can make it
 * hold is bounded: rounds far from this node's are ignored, and peers per round are capped.
 */

export interface PhaseSpan {
  phase: string
  /** Epoch milliseconds. */
  start: number
  end?: number
}

export interface PeerRound {
  /** The base this peer's commit for the round produced (the last one heard). */
  hash?: string
  /** The base this peer trained on in the round (its announcement). */
  base?: string
  /** Its mean training loss in the round, as announced. */
  loss?: number
}

export interface RoundView {
  round: number
  /** This node's final entry for the round (a switch supersedes its own commit). */
  hash?: string
  parent?: string
  kind?: 'commit' | 'switch'
  contributors?: number
  committedAt?: string
  /** This node's eval metrics (from its own commit). */
  eval?: { before?: number; local?: number; after?: number }
  trainLoss?: number
  /** Phases this node went through, if the round ran since this process started. */
  phases: PhaseSpan[]
  /** Seconds from the start of training to the commit. */
  seconds?: number
  peers: Record<string, PeerRound>
}

interface Live {
  phases: PhaseSpan[]
  seconds?: number
  peers: Map<string, PeerRound>
}

export class SwarmHistory {
  private readonly rounds = new Map<number, Live>()
  /** The highest round this node worked on: peers' claims are only kept near it. */
  private current = 0
  private open?: PhaseSpan

  constructor(private readonly capacity = 200, private readonly maxPeersPerRound = 128) {}

  /** This node entered `phase` while working on `round`. */
  phase(round: number, phase: string, at = Date.now()): void {
    this.current = Math.max(this.current, round)
    if (this.open) this.open.end = at
    this.open = undefined
    const live = this.live(round)
    // A node that stops making rounds leaves no open span behind.
    if (!live || phase === 'done' || phase === 'stopping') return
    this.open = { phase, start: at }
    live.phases.push(this.open)
    if (live.phases.length > 64) live.phases.splice(0, live.phases.length - 64)
  }

  /** This node committed (or adopted) a round; `seconds` from the start of its training. */
  committed(round: number, seconds?: number): void {
    const live = this.live(round)
    if (live && seconds !== undefined) live.seconds = seconds
  }

  /** A verified gossip message from `from`. */
  heard(msg: GossipMessage, from: string): void {
    // Votes and holder adverts say nothing about a peer's own contribution.
    if (msg.type === 'vote' || msg.type === 'have') return
    // A fabricated far-away round must not evict real ones.
    if (msg.round > this.current + 4 || msg.round <= this.current - this.capacity) return
    const live = this.live(msg.round)
    if (!live) return
    let p = live.peers.get(from)
    if (!p) {
      if (live.peers.size >= this.maxPeersPerRound) return
      p = {}
      live.peers.set(from, p)
    }
    if (msg.type === 'commit') p.hash = msg.hash
    else if (msg.type === 'announce') {
      p.base = msg.base
      if (msg.loss !== undefined) p.loss = msg.loss
    }
  }

  /** The latest commit heard from each peer: which base each one is on. */
  latestCommits(): Map<string, { round: number; hash: string }> {
    const out = new Map<string, { round: number; hash: string }>()
    for (const round of [...this.rounds.keys()].sort((a, b) => a - b)) {
      for (const [peer, p] of this.rounds.get(round)!.peers) if (p.hash) out.set(peer, { round, hash: p.hash })
    }
    return out
  }

  /**
   * The last `limit` rounds, oldest first: this node's ledger (which survives restarts) merged
   * with what this process saw (phases, peers).
   */
  view(ledger: readonly LedgerEntry[], limit: number): RoundView[] {
    const own = new Map<number, LedgerEntry>()
    const commits = new Map<number, LedgerEntry>()
    for (const e of ledger) {
      own.set(e.round, e)
      if (e.kind === 'commit') commits.set(e.round, e)
    }
    const rounds = [...new Set([...own.keys(), ...this.rounds.keys()])].sort((a, b) => a - b).slice(-limit)
    return rounds.map((round) => {
      const e = own.get(round)
      const c = commits.get(round)
      const live = this.rounds.get(round)
      return {
        round,
        hash: e?.hash,
        parent: e?.parent,
        kind: e?.kind,
        contributors: e?.deltas.length,
        committedAt: e?.at,
        eval: c?.local ? { before: c.local.evalBefore, local: c.local.evalLocal, after: c.local.evalAfter } : undefined,
        trainLoss: c?.local?.trainLoss,
        phases: live?.phases.map((p) => ({ ...p })) ?? [],
        seconds: live?.seconds,
        peers: Object.fromEntries(live?.peers ?? []),
      }
    })
  }

  private live(round: number): Live | undefined {
    let r = this.rounds.get(round)
    if (r) return r
    if (round <= this.current - this.capacity) return undefined
    r = { phases: [], peers: new Map() }
    this.rounds.set(round, r)
    // Evict the oldest rounds beyond capacity.
    if (this.rounds.size > this.capacity) {
      const keys = [...this.rounds.keys()].sort((a, b) => a - b)
      for (const k of keys.slice(0, this.rounds.size - this.capacity)) this.rounds.delete(k)
    }
    return this.rounds.get(round)
  }
}
