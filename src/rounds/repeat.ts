/**
 * When to repeat our own gossip (announce, vote, last commit). Gossip is best effort, so a node
 * repeats its current messages; but a fixed period costs every peer a signature check per repeat,
 * N² checks per period in all, and a slow round then repeats more and gets slower still. So the
 * period starts short after a change and doubles while nothing changes, up to a cap; a peer newly
 * joining the topic brings it back to the start, so a late joiner hears the round promptly.
 */
/** A repeat period doubles up to this many times its base (2, 4, 8, 16 s from a 2 s base). */
export const REPEAT_CAP_FACTOR = 8

export class RepeatSchedule {
  private interval: number
  private nextAt: number

  constructor(
    private readonly baseMs: number,
    private readonly maxMs: number,
    private readonly now: () => number = Date.now,
  ) {
    this.interval = baseMs
    this.nextAt = now() + baseMs
  }

  /** Our messages changed (just published) or a peer joined: repeat again after the base period. */
  reset(): void {
    this.interval = this.baseMs
    this.nextAt = this.now() + this.baseMs
  }

  /** True when a repeat is due; the next one then comes after twice the wait, up to the cap. */
  due(): boolean {
    const t = this.now()
    if (t < this.nextAt) return false
    this.interval = Math.min(this.interval * 2, this.maxMs)
    this.nextAt = t + this.interval
    return true
  }

  /** Milliseconds until the next repeat (for tests and status). */
  get waitMs(): number {
    return Math.max(0, this.nextAt - this.now())
  }
}
