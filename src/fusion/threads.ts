import { availableParallelism } from 'node:os'
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads'
import { FileBytes } from '../codec/index.js'
import { ArenaRegion, kernelArena } from '../codec/kernel-arena.js'
import { kernelRegionBytes } from '../codec/wasm-q8.js'
import type { StagedFormat } from './accumulate.js'

/**
 * Helper threads for fusion. Summing rules split each large tensor's coordinates between the
 * calling thread and helpers; every coordinate still sees the same additions in the same order,
 * so the result does not depend on the number of threads. Helpers read the deltas themselves
 * (from their files, or from payloads in shared memory) and write their coordinates of the new
 * base into shared memory. The call stays synchronous: the caller fuses its own share, then
 * blocks (Atomics.wait) until every helper has answered.
 */

/** Tensors smaller than this (values) are fused by the calling thread alone. */
export const MIN_SPLIT = 1 << 18

/** A helper that does not answer within this time is stopped and its share done by the caller. */
const HELPER_TIMEOUT_MS = 300_000
/** A helper thread that is not running this long after it was created never will be (its code did not load). */
const STARTUP_TIMEOUT_MS = 30_000

/** Where a helper reads a delta: its file in the store, or a payload in shared memory (`at`: its address, when in the kernel arena). */
export type SharedSource = { readonly id: string; readonly file: string } | { readonly id: string; readonly bytes: Uint8Array; readonly at?: number }

/** The kernel arena and the helper's region of it (set by runWithHelpers). */
export interface HelperKernel {
  memory: WebAssembly.Memory
  at: number
  bytes: number
}

/**
 * One helper's share of one tensor: coordinates [lo, hi); `base` and `out` are whole tensors in
 * shared memory (`baseAt`, `outAt`: their addresses, when in the kernel arena).
 */
export interface TensorRange {
  name: string
  lo: number
  hi: number
  base: Float32Array
  out: Float32Array
  baseAt?: number
  outAt?: number
}

export interface HelperJob {
  /** The deltas, in fusion (id) order. */
  sources: SharedSource[]
  /** The base's names and shapes, which every delta must have. */
  layout: [string, number[]][]
  round: number
  baseHash: string
  ranges: TensorRange[]
  weights: number[]
  scale: number
  div: number
  chunk: number
  /** How every delta is staged for the kernel. */
  format: StagedFormat
  /** Files this helper checks whole (sha256 against the id, container checksum) after fusing. */
  verify: { id: string; file: string }[]
  kernel?: HelperKernel
}

export interface HelperResult {
  ok: boolean
  error?: string
  /** Ids of the files of `verify` found intact. */
  verified: string[]
}

let threads = Math.min(availableParallelism(), 4)

/** Threads fusion may use, the caller's included (1: no helpers). */
export function fusionThreads(): number {
  return threads
}

export function setFusionThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1 || n > 64) throw new RangeError(`fusion threads must be an integer from 1 to 64, got ${n}`)
  threads = n
  for (const h of helpers.splice(n - 1)) h?.worker.terminate()
  for (const r of regions.splice(n - 1)) r?.release()
}

/** Each helper's region of the kernel arena, kept from one fusion to the next. */
const regions: (ArenaRegion | undefined)[] = []

/** Helper i's region of at least `bytes` bytes, or undefined when the arena cannot give one. */
function helperRegion(i: number, bytes: number): HelperKernel | undefined {
  const arena = kernelArena()
  if (!arena) return undefined
  const r = (regions[i] ??= new ArenaRegion(arena))
  const at = r.ensure(bytes)
  return at === undefined ? undefined : { memory: arena.memory, at, bytes: r.bytes }
}

/** Gives a tensorArray's region of the kernel arena back once the array is garbage. */
const reclaim = new FinalizationRegistry<number>((at) => kernelArena()?.release(at))

/**
 * A float32 array of `length` zeros where fusion works on it fastest. A large one goes in the
 * kernel arena when it has room, on any number of threads: fusion's kernels then read it and
 * write it in place instead of copying each piece in and out. Else, when helpers could fuse it,
 * in a SharedArrayBuffer of its own. An arena array's region is given back when the array itself
 * is garbage, so a view of it must not outlive it (fusion's views are taken and dropped within a call).
 */
export function tensorArray(length: number): Float32Array {
  if (length < MIN_SPLIT) return new Float32Array(length)
  const arena = kernelArena()
  const at = arena?.alloc(length * 4)
  if (at === undefined) return threads > 1 ? new Float32Array(new SharedArrayBuffer(length * 4)) : new Float32Array(length)
  const a = new Float32Array(arena!.buffer(), at, length).fill(0)
  reclaim.register(a, at)
  return a
}

export function isShared(a: ArrayBufferView): boolean {
  return a.buffer instanceof SharedArrayBuffer
}

interface Helper {
  worker: Worker
  port: MessagePort
  /** [0]: 0 while a job runs, 1 once its result is on `port`; [1]: 1 once the thread runs. */
  status: Int32Array
  createdAt: number
  dead: boolean
}

const helpers: (Helper | undefined)[] = []
let sharesDone = 0
/** Why helper threads cannot run in this process (then fusion stays on the calling thread). */
let broken: string | undefined

/** Whether fusion may hand work to helper threads: more than one thread configured, and they start. */
export function helpersUsable(): boolean {
  return threads > 1 && broken === undefined
}

/** Shares of fusions helpers have done (and answered) since the process started. */
export function helperSharesDone(): number {
  return sharesDone
}

function helper(i: number): Helper {
  const existing = helpers[i]
  if (existing && !existing.dead) return existing
  const { port1, port2 } = new MessageChannel()
  const status = new Int32Array(new SharedArrayBuffer(8))
  const worker = new Worker(new URL('./thread-worker.js', import.meta.url), { workerData: { port: port2, status }, transferList: [port2] })
  // Idle helpers must not keep the process alive.
  worker.unref()
  const h: Helper = { worker, port: port1, status, createdAt: Date.now(), dead: false }
  worker.on('error', (err) => {
    h.dead = true
    broken ??= `fusion helper thread failed (${err.message}); fusing on one thread`
  })
  worker.on('exit', () => (h.dead = true))
  helpers[i] = h
  return h
}

/**
 * Start the helper threads now (a daemon at start-up), so that they are running by the first
 * fusion, and one that cannot start is known before then.
 */
export function startFusionHelpers(): void {
  for (let i = 0; i < threads - 1 && broken === undefined; i++) helper(i)
}

/** Why helper threads are not used, if they failed. */
export function fusionHelperProblem(): string | undefined {
  return broken
}

/**
 * Runs jobs[i] on helper i while `own` runs on this thread, then waits for every helper, also
 * when `own` throws (helpers write into arrays the caller owns). A helper that failed or did not
 * answer gives ok: false, and the caller does its share itself.
 */
export function runWithHelpers(jobs: HelperJob[], own: () => void): HelperResult[] {
  const running = jobs.map((job, i) => {
    const h = helper(i)
    Atomics.store(h.status, 0, 0)
    // A helper's kernel works in its own region of the arena, where it also finds payloads that lie there.
    h.worker.postMessage({ ...job, kernel: helperRegion(i, kernelRegionBytes(job.chunk)) })
    return h
  })
  let results: HelperResult[] = []
  try {
    own()
  } finally {
    results = running.map((h, i) => awaitHelper(h, i))
  }
  return results
}

function awaitHelper(h: Helper, i: number): HelperResult {
  const deadline = Date.now() + HELPER_TIMEOUT_MS
  while (Atomics.load(h.status, 0) === 0) {
    let why: string | undefined
    if (Atomics.load(h.status, 1) === 0 && Date.now() - h.createdAt > STARTUP_TIMEOUT_MS) {
      why = broken = `fusion helper threads did not start in ${STARTUP_TIMEOUT_MS / 1000} s; fusing on one thread`
    } else if (Date.now() >= deadline) {
      why = `fusion helper ${i + 1} did not answer in ${HELPER_TIMEOUT_MS / 1000} s`
    }
    if (why) {
      h.dead = true
      helpers[i] = undefined
      void h.worker.terminate()
      return { ok: false, error: why, verified: [] }
    }
    Atomics.wait(h.status, 0, 0, 1000)
  }
  const reply = receiveMessageOnPort(h.port)?.message as HelperResult | undefined
  if (reply?.ok) sharesDone++
  return reply ?? { ok: false, error: `fusion helper ${i + 1} gave no result`, verified: [] }
}

/** The ids of the files found intact (sha256 against the id, container checksum); a damaged one is left to the caller, which names it. */
export function verifyFiles(list: readonly { id: string; file: string }[]): string[] {
  const ok: string[] = []
  for (const { id, file } of list) {
    try {
      const bytes = FileBytes.open(file)
      try {
        bytes.verify(id)
        ok.push(id)
      } finally {
        bytes.close()
      }
    } catch {
      // Checked again by the caller, which rejects the delta with the reason.
    }
  }
  return ok
}
