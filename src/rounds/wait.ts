/**
 * Wait until `ready()` holds, re-checking whenever `wake()` is called (new gossip, a finished
 * fetch) and at least every `pollMs`. Resolves true when ready, false at the deadline.
 */
export class Waker {
  private waiters = new Set<() => void>()

  wake(): void {
    for (const w of this.waiters) w()
  }

  async until(ready: () => boolean, opts: { deadline?: number; signal?: AbortSignal; pollMs?: number } = {}): Promise<boolean> {
    const poll = opts.pollMs ?? 500
    while (true) {
      if (opts.signal?.aborted) throw opts.signal.reason ?? new Error('aborted')
      if (ready()) return true
      const left = opts.deadline === undefined ? poll : opts.deadline - Date.now()
      if (left <= 0) return false
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(t)
          this.waiters.delete(done)
          opts.signal?.removeEventListener('abort', done)
          resolve()
        }
        const t = setTimeout(done, Math.min(poll, left))
        this.waiters.add(done)
        opts.signal?.addEventListener('abort', done, { once: true })
      })
    }
  }
}
