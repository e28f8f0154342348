import { parentPort, workerData } from 'node:worker_threads'
import { arenaCopier, copyRange, type CopyJob } from './parallel-copy.js'

/** A thread of parallelCopyTimer: copies the byte range it is sent. */
const job = workerData as CopyJob
const copy = job.memory && job.at ? arenaCopier(job.memory) : undefined
parentPort!.on('message', ({ lo, hi }: { lo: number; hi: number }) => {
  copyRange(job, copy, lo, hi)
  parentPort!.postMessage('done')
})
