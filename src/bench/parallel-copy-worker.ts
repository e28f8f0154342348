import { parentPort, workerData } from 'node:worker_threads'
import { copyRange } from './parallel-copy.js'

/** A thread of parallelCopyTimer: copies the byte range it is sent. */
const { sources, dest } = workerData as { sources: Uint8Array[]; dest: Uint8Array }
parentPort!.on('message', ({ lo, hi }: { lo: number; hi: number }) => {
  copyRange(sources, dest, lo, hi)
  parentPort!.postMessage('done')
})
