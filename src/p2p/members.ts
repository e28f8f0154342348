/**
 * The swarm members a node knows of. In a full mesh every member is a direct peer subscribed to
 * the swarm's topic; in a swarm larger than a node's peer set most members are far away and
 * known only by the gossip they author, which reaches us through the peers in between. So a
 * member is a direct subscriber, or an author heard within `ttlMs` (every member speaks at
 * least once per round, and repeats a hello while idle). A direct peer that leaves the topic or
 * disconnects is gone at once: that we know, unlike the silence of a far one.
 */
export class MemberView {
  private readonly heard = new Map<string, number>()

  constructor(
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** A message authored by `peer` reached us; true if it was not a member before. */
  heardFrom(peer: string): boolean {
    const t = this.now()
    const last = this.heard.get(peer)
    this.heard.set(peer, t)
    return last === undefined || t - last > this.ttlMs
  }

  /** A direct peer left the topic or disconnected. */
  forget(peer: string): void {
    this.heard.delete(peer)
  }

  /** Direct subscribers, and the authors heard within the ttl; sorted. */
  list(direct: Iterable<string>): string[] {
    const t = this.now()
    const out = new Set(direct)
    for (const [peer, at] of this.heard) {
      if (t - at <= this.ttlMs) out.add(peer)
      else this.heard.delete(peer)
    }
    return [...out].sort()
  }
}
