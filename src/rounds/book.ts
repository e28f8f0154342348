import type { Contribution } from '../store/ledger.js'

/**
 * What this node has heard about rounds: announcements, votes and commits, keyed by
 * (round, base). Handlers are idempotent (gossip may repeat messages), and old rounds are
 * pruned so a peer cannot make the book grow without bound.
 */

export interface KnownDelta extends Contribution {
  size: number
  /** Peers that said they hold it (author, voters): any of them can serve it. */
  providers: Set<string>
}

interface RoundView {
  deltas: Map<string, KnownDelta>
  /** Announcers on this (round, base): who trained on this base. */
  announcers: Set<string>
  /** Which delta each announcer announced. */
  announced: Map<string, string>
  votes: Map<string, Contribution[]>
  commits: Map<string, { hash: string; rule: string; contributors: number }>
}

const key = (round: number, base: string): string => `${round}:${base}`

export class RoundBook {
  private readonly views = new Map<string, RoundView>()
  private readonly byRound = new Map<number, Set<string>>()

  constructor(private readonly maxBasesPerRound = 16, private readonly maxRounds = 64) {}

  /** Rounds with any record, ascending. */
  rounds(): number[] {
    return [...this.byRound.keys()].sort((a, b) => a - b)
  }

  view(round: number, base: string): RoundView {
    const k = key(round, base)
    let v = this.views.get(k)
    if (!v) {
      const bases = this.byRound.get(round) ?? new Set()
      // Bound the state a flood of fabricated rounds or bases can create; extras get a scratch view.
      if (bases.size >= this.maxBasesPerRound || (!this.byRound.has(round) && this.byRound.size >= this.maxRounds)) return { deltas: new Map(), announcers: new Set(), announced: new Map(), votes: new Map(), commits: new Map() }
      v = { deltas: new Map(), announcers: new Set(), announced: new Map(), votes: new Map(), commits: new Map() }
      this.views.set(k, v)
      bases.add(base)
      this.byRound.set(round, bases)
    }
    return v
  }

  addDelta(round: number, base: string, c: Contribution, size: number, provider: string): KnownDelta {
    const v = this.view(round, base)
    let d = v.deltas.get(c.id)
    if (!d) {
      d = { ...c, size, providers: new Set() }
      v.deltas.set(c.id, d)
    }
    if (size > 0 && d.size <= 0) d.size = size
    d.providers.add(provider)
    return d
  }

  /** An honest node announces one delta per round: a second, different one is refused. */
  addAnnounce(round: number, base: string, c: Contribution, size: number, from: string): boolean {
    const v = this.view(round, base)
    const key = `${from}`
    const prior = v.announced.get(key)
    if (prior !== undefined && prior !== c.id) return false
    v.announced.set(key, c.id)
    this.addDelta(round, base, c, size, from)
    v.announcers.add(from)
    return true
  }

  addVote(round: number, base: string, voter: string, deltas: Contribution[]): void {
    const v = this.view(round, base)
    const prev = v.votes.get(voter)
    // A later vote from the same peer can only grow (it fetched more); keep the larger one.
    if (!prev || deltas.length >= prev.length) v.votes.set(voter, deltas)
    for (const c of deltas) this.addDelta(round, base, c, 0, voter)
  }

  /** `from` holds these deltas (fetched and verified): it can serve them. Unknown ids are ignored. */
  addHave(round: number, base: string, from: string, ids: string[]): void {
    const v = this.view(round, base)
    for (const id of ids) v.deltas.get(id)?.providers.add(from)
  }

  addCommit(round: number, base: string, from: string, hash: string, rule: string, contributors: number): void {
    this.view(round, base).commits.set(from, { hash, rule, contributors })
  }

  /**
   * Bases built on in a round, each with the peers on it: its announcers and voters (with
   * bounded contributors most members only vote).
   */
  basesOf(round: number): Map<string, Set<string>> {
    const out = new Map<string, Set<string>>()
    for (const base of this.byRound.get(round) ?? []) {
      const v = this.views.get(key(round, base))!
      out.set(base, new Set([...v.announcers, ...v.votes.keys()]))
    }
    return out
  }

  /** Commits heard for a round on any parent, by resulting hash. */
  commitsOf(round: number): Map<string, { parent: string; rule: string; contributors: number; committers: Set<string> }> {
    const out = new Map<string, { parent: string; rule: string; contributors: number; committers: Set<string> }>()
    for (const base of this.byRound.get(round) ?? []) {
      for (const [from, c] of this.views.get(key(round, base))!.commits) {
        const e = out.get(c.hash) ?? { parent: base, rule: c.rule, contributors: c.contributors, committers: new Set<string>() }
        e.committers.add(from)
        out.set(c.hash, e)
      }
    }
    return out
  }

  /** Forget rounds before `round`. */
  prune(round: number): void {
    for (const [r, bases] of this.byRound) {
      if (r >= round) continue
      for (const b of bases) this.views.delete(key(r, b))
      this.byRound.delete(r)
    }
  }
}
