/**
 * Tells peers which deltas this node holds, so they can fetch from it too (in a sparse swarm a
 * far author cannot be reached, and a neighbour that holds the delta is the way to it).
 *
 * The first advertisement for a (round, base) goes out at once (early holders spread the load
 * most); later ones at most once per `slowMs`, each with only the ids not advertised before
 * (receivers add them up). Every (round, base) asked for since the last advertisement is
 * advertised when the timer fires: a pending advertisement of the previous round must not
 * swallow the first one of the next.
 */
export class HeldAdvertiser {
  private timer?: NodeJS.Timeout
  private timerIsSlow = false
  private readonly pending = new Map<string, { round: number; base: string }>()
  /** Ids already advertised, per (round, base); only the latest few are kept. */
  private readonly advertised = new Map<string, Set<string>>()

  constructor(
    private readonly held: (round: number, base: string) => string[],
    private readonly publish: (round: number, base: string, ids: string[]) => void,
    private readonly fastMs = 50,
    private readonly slowMs = 1000,
    private readonly keep = 4,
  ) {}

  /** This node now holds more deltas of (round, base). */
  due(round: number, base: string): void {
    const key = `${round}:${base}`
    this.pending.set(key, { round, base })
    const fast = !this.advertised.has(key)
    if (this.timer && !(fast && this.timerIsSlow)) return
    clearTimeout(this.timer)
    this.timerIsSlow = !fast
    this.timer = setTimeout(() => this.fire(), fast ? this.fastMs : this.slowMs)
  }

  stop(): void {
    clearTimeout(this.timer)
    this.timer = undefined
    this.pending.clear()
  }

  private fire(): void {
    this.timer = undefined
    const due = [...this.pending.entries()]
    this.pending.clear()
    for (const [key, { round, base }] of due) {
      const sent = this.advertised.get(key) ?? new Set<string>()
      this.advertised.delete(key)
      this.advertised.set(key, sent)
      while (this.advertised.size > this.keep) this.advertised.delete(this.advertised.keys().next().value!)
      const ids = this.held(round, base).filter((id) => !sent.has(id))
      for (const id of ids) sent.add(id)
      if (ids.length > 0) this.publish(round, base, ids)
    }
  }
}
