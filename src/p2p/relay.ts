import { PayloadError } from '../util/errors.js'

/**
 * Content this node is receiving right now, open to other fetchers as it arrives: a node
 * relays the bytes it already has instead of sending its peers back to the author, so one
 * delta flows down a chain of nodes at the speed of one link rather than through the author's
 * uplink N-1 times. Relayed bytes are unverified; every receiver checks the sha256 of the
 * whole content as it always does, and a relay whose own transfer fails cuts its readers off.
 */
export class Incoming {
  private received = 0
  private done = false
  private failed?: Error
  private waiters: (() => void)[] = []
  private settle!: [() => void, (err: Error) => void]
  /** Resolves when the transfer completes, rejects when it fails. */
  readonly settled = new Promise<void>((resolve, reject) => (this.settle = [resolve, reject]))

  constructor(
    /** The content's size, from the header of the transfer that fills it. */
    readonly size: number,
    /** The buffer the transfer fills, front to back. */
    private readonly buf: Uint8Array,
  ) {
    this.settled.catch(() => {})
  }

  /** `n` more bytes are in the buffer. */
  grew(n: number): void {
    this.received = n
    this.wake()
  }

  /** The whole content arrived and matched its id. */
  finish(): void {
    this.done = true
    this.wake()
    this.settle[0]()
  }

  fail(err: Error): void {
    this.failed ??= err
    this.wake()
    this.settle[1](err)
  }

  /** The bytes, in pieces of at most `chunk`, as they arrive; throws if the transfer fails first. */
  async *bytes(chunk: number): AsyncGenerator<Uint8Array> {
    let sent = 0
    while (sent < this.size) {
      if (this.failed) throw new PayloadError(`relayed transfer failed: ${this.failed.message}`, 'truncated')
      if (sent < this.received) {
        const end = Math.min(this.received, sent + chunk)
        yield this.buf.subarray(sent, end)
        sent = end
        continue
      }
      if (this.done) break
      await new Promise<void>((resolve) => this.waiters.push(resolve))
    }
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w()
  }
}
