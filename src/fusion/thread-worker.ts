import { parentPort, workerData, type MessagePort } from 'node:worker_threads'
import { FileBytes, openDelta, openDeltaSource, type DeltaReader } from '../codec/index.js'
import { markKernelBuffer } from '../codec/kernel-arena.js'
import { kernelOn, setQ8Kernel } from '../codec/wasm-q8.js'
import { fuseRange } from './accumulate.js'
import { verifyFiles, type HelperJob, type HelperResult } from './threads.js'

/** A fusion helper thread (threads.ts): fuses its ranges of each tensor, then checks its files. */

const { port, status } = workerData as { port: MessagePort; status: Int32Array }
// Running: the caller stops waiting for a thread that never gets here.
Atomics.store(status, 1, 1)

parentPort!.on('message', (job: HelperJob) => {
  let result: HelperResult
  try {
    fuseRanges(job)
    result = { ok: true, verified: verifyFiles(job.verify) }
  } catch (err) {
    result = { ok: false, error: (err as Error).message, verified: [] }
  }
  // The result is on the port before the caller, blocked on `status`, wakes up.
  port.postMessage(result)
  Atomics.store(status, 0, 1)
  Atomics.notify(status, 0)
})

function fuseRanges(job: HelperJob): void {
  if (!job.kernel) throw new Error('no region of the kernel arena for this helper')
  const { memory, at, bytes } = job.kernel
  const kernel = kernelOn(memory, {
    ensure(need) {
      if (need > bytes) throw new RangeError(`helper kernel region of ${bytes} bytes cannot hold ${need}`)
      return at
    },
  })
  if (!kernel) throw new Error('no WebAssembly SIMD in this thread')
  setQ8Kernel(kernel)
  kernel.accumulator(job.chunk)
  // Payloads, bases and results in the arena arrive on buffer objects of this thread's own: known, they are read and written in place.
  const inArena = (view: ArrayBufferView, at: number | undefined) => at !== undefined && at === view.byteOffset && markKernelBuffer(view.buffer)
  for (const s of job.sources) if ('bytes' in s) inArena(s.bytes, s.at)
  for (const r of job.ranges) {
    inArena(r.base, r.baseAt)
    inArena(r.out, r.outAt)
  }
  const expect = { layout: new Map(job.layout.map(([name, shape]) => [name, { shape }])), round: job.round, baseHash: job.baseHash }
  const files: FileBytes[] = []
  try {
    // The caller opened and checked every delta already; its checksum verdict stands.
    const readers: DeltaReader[] = job.sources.map((s) => {
      if ('bytes' in s) return openDelta(s.bytes, expect, { checksumOk: true })
      // Checked whole by the thread the file is assigned to, not as this share reads it.
      const bytes = FileBytes.open(s.file, { hashAsRead: false })
      files.push(bytes)
      return openDeltaSource(bytes, expect, true)
    })
    for (const r of job.ranges) fuseRange(readers, r.name, r.base, r.out, r.lo, r.hi, { ...job, kernel })
  } finally {
    for (const f of files) f.close()
  }
}
