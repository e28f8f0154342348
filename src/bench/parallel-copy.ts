import { Worker } from 'node:worker_threads'
import { ARENA_MAX_PAGES, kernelAddress, kernelArena, kernelBytes, releaseKernelBytes } from '../codec/kernel-arena.js'
import { get, I32, importSharedMemory, op, section, str, uleb, WASM_HEADER } from '../codec/wasm-asm.js'

/**
 * A plain copy of the payload bytes split over several threads, as fusion splits its work: each
 * thread copies one contiguous range of the payloads laid end to end into a destination in the
 * same memory. In the kernel arena (where fusion reads the payloads) the copy is WebAssembly's
 * memory.copy, a memmove: TypedArray.set and Buffer.copy between shared buffers go through V8's
 * slower copy for memory other threads may be writing (1.5 to 3 times slower here), which would
 * measure V8 rather than the machine. Outside the arena, Buffer.copy.
 */

// No locals; memory.copy (0xfc 10) from memory 0 to memory 0.
const COPY_BODY = [0, ...get(0), ...get(1), ...get(2), 0xfc, 10, 0, 0, op.end]
// (module (import "k" "mem" (memory 1 max shared)) (func (export "copy") (param dest src len) memory.copy))
const COPY_MODULE = new Uint8Array([
  ...WASM_HEADER,
  ...section(1, [1, 0x60, 3, I32, I32, I32, 0]),
  ...importSharedMemory(ARENA_MAX_PAGES),
  ...section(3, [1, 0]),
  ...section(7, [1, ...str('copy'), 0x00, 0]),
  ...section(10, [1, ...uleb(COPY_BODY.length), ...COPY_BODY]),
])

export type CopyFn = (dest: number, src: number, len: number) => void

/** memory.copy on `memory` (the kernel arena's). */
export function arenaCopier(memory: WebAssembly.Memory): CopyFn {
  return new WebAssembly.Instance(new WebAssembly.Module(COPY_MODULE), { k: { mem: memory } }).exports.copy as CopyFn
}

/** Where each piece lies: arena addresses of the sources and the destination, when all are there. */
export interface CopyJob {
  sources: Uint8Array[]
  dest: Uint8Array
  /** With memory: arena addresses of every source and of dest. */
  memory?: WebAssembly.Memory
  at?: { sources: number[]; dest: number }
}

/** Copies bytes [lo, hi) of the concatenated sources to the same offsets of dest. */
export function copyRange(job: CopyJob, copy: CopyFn | undefined, lo: number, hi: number): void {
  const to = Buffer.from(job.dest.buffer, job.dest.byteOffset, job.dest.byteLength)
  let at = 0
  job.sources.forEach((s, k) => {
    const a = Math.max(lo, at)
    const b = Math.min(hi, at + s.length)
    if (a < b) {
      if (copy && job.at) copy(job.at.dest + a, job.at.sources[k] + (a - at), b - a)
      else Buffer.from(s.buffer, s.byteOffset, s.byteLength).copy(to, a, a - at, b - at)
    }
    at += s.length
  })
}

/** Best of `repeats` timed copies on `threads` threads; call close() when done. */
export async function parallelCopyTimer(sources: readonly Uint8Array[], threads: number): Promise<{ time(repeats: number): Promise<number>; inArena: boolean; close(): Promise<void> }> {
  const total = sources.reduce((a, s) => a + s.length, 0)
  const dest = kernelBytes(total)
  const addresses = [...sources, dest].map((v) => kernelAddress(v))
  const arena = kernelArena()
  const inArena = arena !== null && addresses.every((a) => a !== undefined)
  const job: CopyJob = { sources: [...sources], dest, ...(inArena ? { memory: arena.memory, at: { sources: addresses.slice(0, -1) as number[], dest: addresses[addresses.length - 1]! } } : {}) }
  const copy = inArena ? arenaCopier(arena.memory) : undefined
  const cut = (j: number) => Math.round((total * j) / threads)
  const workers = Array.from({ length: threads - 1 }, () => new Worker(new URL('./parallel-copy-worker.js', import.meta.url), { workerData: job }))
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
    copyRange(job, copy, 0, cut(1))
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
    inArena,
    close: async () => {
      await Promise.all(workers.map((w) => w.terminate()))
      releaseKernelBytes(dest)
    },
  }
}
