import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { encodeDelta, FileBytes, openDelta, type CodecSettings } from '../codec/index.js'
import { CHUNK, fuseRound, fusionThreads, hashTensors, setFusionThreads, tensorArray, type DeltaFileInput, type DeltaInput } from '../fusion/index.js'
import type { ModelConfig } from '../model/config.js'
import { decodeSafetensors, encodeSafetensors } from '../model/safetensors.js'
import type { TensorMap } from '../model/tensors.js'
import { sha256Hex } from '../util/hash.js'
import { copyArray } from '../util/copy.js'
import { FUSE_INPUTS, ownKernel, q8Kernel, setQ8Kernel } from '../codec/wasm-q8.js'
import { kernelBytes } from '../codec/kernel-arena.js'
import { sortedNames } from '../model/tensors.js'
import { childMain } from './child.js'
import { parallelCopyTimer } from './parallel-copy.js'
import { noiseTensors } from './synthetic.js'

/**
 * Fusion throughput, in its own process so that its peak RSS is fusion's alone: `make` writes a
 * base and N encoded deltas to a directory; `fuse` loads the base and fuses the first N deltas,
 * from payloads in memory or from their files (as the daemon does), and times a plain copy of
 * the same payload bytes side by side.
 */

export type FusionJob =
  | { mode: 'make'; dir: string; config: ModelConfig; deltas: number; codec: CodecSettings }
  | { mode: 'fuse'; dir: string; deltas: number; repeats: number; source: 'memory' | 'disk'; threads: number }

export interface MakeResult {
  params: number
  tensors: number
  payloadBytes: number[]
  encodeSeconds: number
}

export interface FuseResult {
  source: 'memory' | 'disk'
  deltas: number
  params: number
  payloadBytes: number
  memcpySeconds: number
  /**
   * fuseRound as the daemon runs it from its second round on: base hash given, ids verified on
   * receipt (`verified`), the result written into the base it replaced (`into`); from disk, each
   * file is hashed as it is read.
   */
  fuseSeconds: number
  /** The same into a fresh array (a node's first fusion): its page faults are paid on top. */
  fuseFreshSeconds: number
  /** Threads fusion used (fusionThreads), and fuseSeconds' path on one thread. */
  threads: number
  fuseOneThreadSeconds: number
  /** In memory only: the same payload bytes copied on `threads` threads, as fusion splits its work (memory.copy in the kernel arena, see parallel-copy.ts). */
  memcpyThreadsSeconds?: number
  /** In memory only: that copy on one thread. */
  memcpyArenaSeconds?: number
  /** Whether those copies ran in the arena (memory.copy) rather than with Buffer.copy. */
  memcpyThreadsInArena?: boolean
  /** Peak RSS of this process (base, result, fusion and, in memory, the payloads), read after the first fusion. */
  peakRssMb: number
  /** In memory only: the one-time id check on receipt (sha256 of every payload), not part of fuseSeconds. */
  idHashSeconds?: number
  /** In memory only: fuseRound without `verified` (id and container checksum in one pass per payload), into a recycled base. */
  fuseUnverifiedSeconds?: number
  /** In memory only: streaming every tensor of every delta through the decoder, the codec's share. */
  decodeSeconds?: number
  /** In memory only: hashing the base, which fuseRound does when not told the hash. */
  baseHashSeconds?: number
  /** In memory only: writing a fresh model-sized float32 array once (page faults), which fusion's result pays and the copy's pre-touched buffer does not. */
  outputTouchSeconds?: number
  /** In memory, q8 only: the kernel alone on one thread, each tensor of every delta and the base already in its memory (see inPlaceKernelSeconds). */
  inPlaceKernelSeconds?: number
}

const META = (baseHash: string) => ({ round: 1, baseHash, examples: 1000 })

async function make(job: Extract<FusionJob, { mode: 'make' }>): Promise<MakeResult> {
  await mkdir(job.dir, { recursive: true })
  const base = noiseTensors(job.config, 1, 0.1)
  const baseHash = hashTensors(base)
  await writeFile(join(job.dir, 'base.safetensors'), encodeSafetensors(base))
  const payloadBytes: number[] = []
  const ids: string[] = []
  let encodeSeconds = 0
  for (let j = 0; j < job.deltas; j++) {
    const delta = noiseTensors(job.config, 100 + j, 1e-3)
    const t0 = performance.now()
    const { payload } = encodeDelta(delta, job.codec, META(baseHash))
    encodeSeconds += (performance.now() - t0) / 1000
    payloadBytes.push(payload.length)
    ids.push(sha256Hex(payload))
    await writeFile(join(job.dir, `delta${j}.cfd`), payload)
  }
  await writeFile(join(job.dir, 'ids.json'), JSON.stringify(ids))
  let params = 0
  for (const t of base.values()) params += t.data.length
  return { params, tensors: base.size, payloadBytes, encodeSeconds: encodeSeconds / job.deltas }
}

function best(repeats: number, f: () => void): number {
  let s = Infinity
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now()
    f()
    s = Math.min(s, (performance.now() - t0) / 1000)
  }
  return s
}

async function loadPayloads(dir: string, n: number): Promise<Uint8Array[]> {
  const payloads: Uint8Array[] = []
  for (let j = 0; j < n; j++) {
    const b = await readFile(join(dir, `delta${j}.cfd`))
    payloads.push(new Uint8Array(b.buffer, b.byteOffset, b.byteLength))
  }
  return payloads
}

/**
 * The payloads read straight into the kernel arena (kernelBytes), where every fusion thread's
 * kernel reads them in place, as an in-memory store of received payloads would keep them.
 */
function loadShared(dir: string, n: number): Uint8Array[] {
  return Array.from({ length: n }, (_, j) => {
    const file = FileBytes.open(join(dir, `delta${j}.cfd`), { hashAsRead: false })
    try {
      const bytes = kernelBytes(file.byteLength)
      file.readInto(0, bytes.length, bytes)
      return bytes
    } finally {
      file.close()
    }
  })
}

/** fuseSeconds' measure again with fusion on one thread. */
function oneThread(repeats: number, fuse: () => unknown): number {
  const threads = fusionThreads()
  setFusionThreads(1)
  try {
    return best(repeats, fuse)
  } finally {
    setFusionThreads(threads)
  }
}

/** Times a copy of the payloads into one buffer (touched first, so page faults are not timed). */
function memcpyTimer(payloads: Uint8Array[]): (repeats: number) => number {
  const dest = new Uint8Array(payloads.reduce((a, p) => a + p.length, 0))
  const copy = () => {
    let off = 0
    for (const p of payloads) {
      dest.set(p, off)
      off += p.length
    }
  }
  copy()
  return (repeats) => best(repeats, copy)
}

async function fuse(job: Extract<FusionJob, { mode: 'fuse' }>): Promise<FuseResult> {
  setFusionThreads(job.threads)
  const buf = await readFile(join(job.dir, 'base.safetensors'))
  // As a node holds its base: large tensors in shared memory, for fusion's helper threads.
  const base = decodeSafetensors(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength), 'base', { alloc: tensorArray }).tensors
  let params = 0
  for (const t of base.values()) params += t.data.length
  const baseHash = hashTensors(base)
  const examples = 1000

  if (job.source === 'disk') {
    // The ids as the daemon knows them (checked on receipt); fusion checks each file against its id as it reads it.
    const ids = JSON.parse(await readFile(join(job.dir, 'ids.json'), 'utf8')) as string[]
    const files: DeltaFileInput[] = ids.slice(0, job.deltas).map((id, j) => ({ id, file: join(job.dir, `delta${j}.cfd`), examples }))
    // The first fusion before anything else is allocated: the peak RSS is fusion's (base and result, as in a node).
    let into: TensorMap | undefined
    const fuseFreshSeconds = best(1, () => {
      into = fuseRound(base, files, { baseHash, verified: true })
    })
    const peakRssMb = process.resourceUsage().maxRSS / 1024
    const payloads = await loadPayloads(job.dir, job.deltas)
    const memcpy = memcpyTimer(payloads)
    const memcpyA = memcpy(job.repeats)
    const fuseSeconds = best(job.repeats, () => fuseRound(base, files, { baseHash, verified: true, into }))
    const fuseOneThreadSeconds = oneThread(job.repeats, () => fuseRound(base, files, { baseHash, verified: true, into }))
    const memcpyB = memcpy(job.repeats)
    const payloadBytes = payloads.reduce((a, p) => a + p.length, 0)
    return { source: 'disk', deltas: job.deltas, params, payloadBytes, memcpySeconds: Math.min(memcpyA, memcpyB), fuseSeconds, fuseFreshSeconds, threads: job.threads, fuseOneThreadSeconds, peakRssMb }
  }

  // Fusion reads the payloads in the kernel arena (its helpers read them too); the copy reads the
  // same bytes from ordinary memory, loaded after the peak RSS of fusion is taken.
  const shared = loadShared(job.dir, job.deltas)
  const payloadBytes = shared.reduce((a, p) => a + p.length, 0)
  const deltas: DeltaInput[] = shared.map((payload) => ({ id: sha256Hex(payload), payload, examples }))
  let into: TensorMap | undefined
  let fuseFreshSeconds = best(1, () => {
    into = fuseRound(base, deltas, { baseHash, verified: true })
  })
  const peakRssMb = process.resourceUsage().maxRSS / 1024
  const payloads = await loadPayloads(job.dir, job.deltas)
  const memcpy = memcpyTimer(payloads)
  const baseHashSeconds = best(1, () => hashTensors(base))
  const outputTouchSeconds = best(1, () => new Float32Array(params).fill(1))
  const idHashSeconds = best(job.repeats, () => payloads.forEach((p) => sha256Hex(p)))
  const readers = payloads.map((p) => openDelta(p, { layout: base }))
  const scratch = new Float32Array(CHUNK)
  const decodeAll = () => {
    for (const r of readers) {
      for (const t of r.tensors) {
        const s = r.stream(t.name)
        for (let at = 0; at < t.numel; at += CHUNK) s.decode(scratch, Math.min(CHUNK, t.numel - at))
      }
    }
  }
  const decodeSeconds = best(job.repeats, decodeAll)
  const memcpyA = memcpy(job.repeats)
  const fuseSeconds = best(job.repeats, () => fuseRound(base, deltas, { baseHash, verified: true, into }))
  const fuseOneThreadSeconds = oneThread(job.repeats, () => fuseRound(base, deltas, { baseHash, verified: true, into }))
  const copyOn = async (threads: number) => {
    const timer = await parallelCopyTimer(shared, threads)
    try {
      return { seconds: await timer.time(job.repeats), inArena: timer.inArena }
    } finally {
      await timer.close()
    }
  }
  const arenaCopy = await copyOn(1)
  const threadsCopy = await copyOn(job.threads)
  fuseFreshSeconds = Math.min(fuseFreshSeconds, best(job.repeats - 1, () => fuseRound(base, deltas, { baseHash, verified: true })))
  const fuseUnverifiedSeconds = best(job.repeats, () => fuseRound(base, deltas, { baseHash, into }))
  const memcpyB = memcpy(job.repeats)
  // Last: it grows the kernel's memory to whole tensors.
  const inPlaceKernelSeconds = inPlaceKernel(base, payloads, job.repeats)
  return {
    source: 'memory', deltas: job.deltas, params, payloadBytes,
    memcpySeconds: Math.min(memcpyA, memcpyB), fuseSeconds, fuseFreshSeconds, threads: job.threads, fuseOneThreadSeconds, memcpyThreadsSeconds: threadsCopy.seconds, memcpyArenaSeconds: arenaCopy.seconds, memcpyThreadsInArena: threadsCopy.inArena, peakRssMb,
    idHashSeconds, fuseUnverifiedSeconds, decodeSeconds, baseHashSeconds, outputTouchSeconds, inPlaceKernelSeconds,
  }
}

/**
 * The kernel alone on one thread, tensor by tensor, with every delta's tensor and the base
 * already in its memory (staged whole, not timed; the best of `repeats` calls per tensor): what
 * fusion would take without reading any piece from outside the kernel's working area. A kernel
 * of its own (its memory grows to whole tensors, which the arena need not hold). Undefined for
 * deltas the kernel does not take at once.
 */
function inPlaceKernel(base: TensorMap, payloads: Uint8Array[], repeats: number): number | undefined {
  const kernel = ownKernel()
  const readers = payloads.map((p) => openDelta(p, { layout: base }))
  if (!kernel || readers.length > FUSE_INPUTS || !readers.every((r) => r.codec === 'q8-block')) return undefined
  const names = sortedNames(base)
  const fusing = q8Kernel()
  // The streams stage into this thread's kernel: this one, for the while.
  setQ8Kernel(kernel)
  try {
    kernel.accumulator(Math.max(...names.map((n) => base.get(n)!.data.length)))
    let seconds = 0
    for (const name of names) {
      const b = base.get(name)!.data
      const streams = readers.map((r) => r.stream(name))
      const B = streams[0].q8Block!
      streams.forEach((s, k) => s.stage!(k, b.length))
      copyArray(kernel.baseArea(), b)
      seconds += best(repeats, () => kernel.fuse(b.length, streams.length, 0, B, undefined, true, true, 1, streams.length))
    }
    return seconds
  } finally {
    setQ8Kernel(fusing)
  }
}

childMain<FusionJob, MakeResult | FuseResult>((job) => (job.mode === 'make' ? make(job) : fuse(job)))
