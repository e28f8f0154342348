import { PayloadError } from '../util/errors.js'

/**
 * Content this node is receiving right now, open to other fetchers as it arrives: a node
 * relays the bytes it already has instead of sending its peers back to the author, so one
 * delta flows down a chain of nodes at the speed of one link rather than through the author's
 * uplink N-1 times. Relayed bytes are unverified; every receiver checks the sha256 of the
 * whole content as it always does, and a relay whose own transfer fails cuts its readers off.
 *
 * It exists from the moment the fetch starts (a peer pointed here may ask before the first
 * byte); the size and buffer come with the response header (`start`).
 */
export class Incoming {
  private buf: Uint8Array = new Uint8Array(0)
  private received = 0
  private done = false
  private failed?: Error
  private waiters: (() => void)[] = []
  private sizeIs!: [(size: number) => void, (err: Error) => void]
  private settle!: [() => void, (err: Error) => void]
  /** The content's size, once the response header is in; rejects if the transfer fails first. */
  readonly size = new Promise<number>((resolve, reject) => (this.sizeIs = [resolve, reject]))
  /** Resolves when the transfer completes, rejects when it fails. */
  readonly settled = new Promise<void>((resolve, reject) => (this.settle = [resolve, reject]))

  constructor() {
    this.size.catch(() => {})
    this.settled.catch(() => {})
  }

  /** The response header said `size`; the transfer fills `buf` front to back. */
  start(size: number, buf: Uint8Array): void {
    this.buf = buf
    this.sizeIs[0](size)
  }

  /** `n` bytes are in the buffer now. */
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
    this.sizeIs[1](err)
    this.settle[1](err)
  }

  /** The bytes, in pieces of at most `chunk`, as they arrive; throws if the transfer fails first. */
  async *bytes(chunk: number): AsyncGenerator<Uint8Array> {
    const size = await this.size
    let sent = 0
    while (sent < size) {
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
