import { Worker } from 'node:worker_threads'

/**
 * A plain copy of the payload bytes split over several threads, as fusion splits its work: each
 * thread copies one contiguous range of the payloads laid end to end, with memmove (Buffer.copy),
 * from shared memory into a shared destination. The baseline for fusion on as many threads.
 */

/** Copies bytes [lo, hi) of the concatenated `sources` to the same offsets of `dest`. */
export function copyRange(sources: readonly Uint8Array[], dest: Uint8Array, lo: number, hi: number): void {
  const to = Buffer.from(dest.buffer, dest.byteOffset, dest.byteLength)
  let at = 0
  for (const s of sources) {
    const a = Math.max(lo, at)
    const b = Math.min(hi, at + s.length)
    if (a < b) Buffer.from(s.buffer, s.byteOffset, s.byteLength).copy(to, a, a - at, b - at)
    at += s.length
  }
}

/** Best of `repeats` timed copies on `threads` threads; call close() when done. */
export async function parallelCopyTimer(sources: readonly Uint8Array[], threads: number): Promise<{ time(repeats: number): Promise<number>; close(): Promise<void> }> {
  const total = sources.reduce((a, s) => a + s.length, 0)
  const dest = new Uint8Array(new SharedArrayBuffer(total))
  const cut = (j: number) => Math.round((total * j) / threads)
  const workers = Array.from({ length: threads - 1 }, () => new Worker(new URL('./parallel-copy-worker.js', import.meta.url), { workerData: { sources, dest } }))
  const run = (j: number) =>
    new Promise<void>((resolve, reject) => {
      const w = workers[j]
      w.once('error', reject)
      w.once('message', () => {
        w.off('error', reject)
        resolve()
      })
      w.postMessage({ lo: cut(j + 1), hi: cut(j + 2) })
    })
  const once = async () => {
    const others = workers.map((_, j) => run(j))
    copyRange(sources, dest, 0, cut(1))
    await Promise.all(others)
  }
  await once() // touches the destination and starts the workers
  return {
    async time(repeats) {
      let best = Infinity
      for (let i = 0; i < repeats; i++) {
        const t0 = performance.now()
        await once()
        best = Math.min(best, (performance.now() - t0) / 1000)
      }
      return best
    },
    close: async () => void (await Promise.all(workers.map((w) => w.terminate()))),
  }
}
