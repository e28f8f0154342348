import { createHash } from 'node:crypto'
import type { Contribution } from '../store/ledger.js'

/**
 * The agreement rules, as pure functions so they can be tested apart from the network.
 *
 * Contributor set: after its own close, each node votes the sorted set of deltas it holds for
 * (round, base). The round's set is the UNION of the votes it receives (its own included),
 * restricted to deltas it could fetch and verify. A node waits for a vote from every contributor
 * in that union (or the vote deadline), so with working gossip every node fuses the same set.
 *
 * Fork choice: if nodes still end a round on different bases, the next round shows it, since
 * announcements and commits name their base. The base of the most advanced round wins, then the
 * one with the most distinct supporters, ties broken by the lowest hash. A node on a losing base
 * fetches the winner's lineage, recomputes and verifies every round, and switches (sync.ts).
 */

export function unionOfVotes(votes: Iterable<Contribution[]>): Contribution[] {
  const byId = new Map<string, Contribution>()
  for (const vote of votes) for (const c of vote) if (!byId.has(c.id)) byId.set(c.id, c)
  return [...byId.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
}

/** Contributors of the union who have not voted yet. */
export function missingVoters(union: Contribution[], voters: Set<string>): string[] {
  const missing = new Set<string>()
  for (const c of union) if (!voters.has(c.peer)) missing.add(c.peer)
  return [...missing].sort()
}

export interface ForkCandidate {
  /** The round being built on `base`. */
  round: number
  base: string
  supporters: number
}

/** The fork-choice winner: the most advanced round, then the most supporters, then the lowest hash. */
export function chooseFork<T extends ForkCandidate>(candidates: Iterable<T>): T | undefined {
  let best: T | undefined
  for (const c of candidates) {
    if (c.supporters <= 0) continue
    if (!best || c.round > best.round || (c.round === best.round && (c.supporters > best.supporters || (c.supporters === best.supporters && c.base < best.base)))) best = c
  }
  return best
}

/**
 * The nodes that train in round `round` on `base` when a swarm bounds its contributors: the k
 * members with the lowest sha256(round, base, peer id). Each node computes it from the members it
 * hears; views that differ for a moment only let a few more deltas in, and the votes still decide
 * one set for everyone. A new base draws a new sample, so every member takes its turn.
 */
export function selectContributors(round: number, base: string, members: Iterable<string>, k: number): Set<string> {
  const ticket = (peer: string) => createHash('sha256').update(`coldfusion-contributors\n${round}\n${base}\n${peer}`).digest('hex')
  const ranked = [...new Set(members)].map((peer) => ({ peer, t: ticket(peer) })).sort((a, b) => (a.t < b.t ? -1 : a.t > b.t ? 1 : 0))
  return new Set(ranked.slice(0, k).map((r) => r.peer))
}
