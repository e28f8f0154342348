import { availableParallelism } from 'node:os'
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads'

/**
 * The new base's arrays. The first write to a fresh array costs a page fault per 4 KiB, which can
 * take longer than the rest of fusion. With a second core, a helper thread allocates the arrays
 * from the last tensor backwards, touches every page and hands each over (transferred, not
 * copied) while fusion works forwards. A tensor is claimed by one side only, so the helper never
 * holds memory the fusion needs and the fusion waits at most for the one tensor being touched.
 */
export interface OutputArrays {
  /** Tensor i's array (length sizes[i], zeros), in increasing i. */
  take(i: number): Float32Array
  /** Stop the helper's work for this fusion (done or failed). */
  close(): void
}

const FREE = 0
const HELPER = 1
const READY = 2
const MAIN = 3

// The helper: claims tensors from the last one, touches one byte per page, hands the buffer over.
const HELPER_SOURCE = `
const { parentPort } = require('node:worker_threads')
parentPort.on('message', ({ sizes, state, port }) => {
  const s = new Int32Array(state)
  for (let i = sizes.length - 1; i >= 0; i--) {
    if (Atomics.compareExchange(s, i, ${FREE}, ${HELPER}) !== ${FREE}) break
    const buf = new ArrayBuffer(sizes[i] * 4)
    const bytes = new Uint8Array(buf)
    for (let j = 0; j < bytes.length; j += 4096) bytes[j] = 0
    port.postMessage({ i, buf }, [buf])
    Atomics.store(s, i, ${READY})
    Atomics.notify(s, i)
  }
  port.close()
})
`

/** How long a take waits for the helper before giving up (it only touches memory: never in practice). */
const STALL_MS = 30_000

let helper: Worker | null | undefined

function helperThread(): Worker | null {
  if (helper !== undefined) return helper
  try {
    const w = new Worker(HELPER_SOURCE, { eval: true })
    w.unref()
    const drop = () => {
      if (helper === w) helper = null
    }
    w.on('error', drop)
    w.on('exit', drop)
    helper = w
  } catch {
    helper = null
  }
  return helper
}

/** Threads fusion may use by default: the cores this process may run on. */
export function defaultThreads(): number {
  return availableParallelism()
}

/** Arrays for tensors of `sizes` values; a helper thread prepares some of them when threads > 1. */
export function outputArrays(sizes: readonly number[], threads: number): OutputArrays {
  const w = threads > 1 && sizes.length > 1 ? helperThread() : null
  if (!w) return { take: (i) => new Float32Array(sizes[i]), close() {} }
  const state = new Int32Array(new SharedArrayBuffer(4 * sizes.length))
  const { port1, port2 } = new MessageChannel()
  w.postMessage({ sizes, state: state.buffer, port: port2 }, [port2])
  const ready = new Map<number, ArrayBuffer>()
  return {
    take(i) {
      if (Atomics.compareExchange(state, i, FREE, MAIN) === FREE) return new Float32Array(sizes[i])
      return new Float32Array(receive(port1, state, ready, i))
    },
    close() {
      for (let i = 0; i < sizes.length; i++) Atomics.compareExchange(state, i, FREE, MAIN)
      port1.close()
      ready.clear()
    },
  }
}

function receive(port: MessagePort, state: Int32Array, ready: Map<number, ArrayBuffer>, i: number): ArrayBuffer {
  const deadline = Date.now() + STALL_MS
  for (;;) {
    if (Atomics.load(state, i) === READY) {
      // Messages come in the helper's order (last tensor first): keep the others for later.
      for (let m = receiveMessageOnPort(port); m; m = receiveMessageOnPort(port)) {
        const { i: j, buf } = m.message as { i: number; buf: ArrayBuffer }
        ready.set(j, buf)
      }
      const buf = ready.get(i)
      if (buf) {
        ready.delete(i)
        return buf
      }
    }
    if (Date.now() > deadline) throw new Error(`fusion: the output helper thread did not hand over tensor ${i}`)
    Atomics.wait(state, i, HELPER, 5)
  }
}
