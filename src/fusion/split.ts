import { littleEndianHost } from '../codec/le.js'
import { kernelAddress } from '../codec/kernel-arena.js'
import { sortedNames, type TensorMap } from '../model/tensors.js'
import { fusionThreads, isShared, MIN_SPLIT, type HelperJob, type SharedSource } from './threads.js'
import type { StagedFormat } from './accumulate.js'
import type { FusionContext, FusionDelta } from './types.js'

/** How fuseBySum shares one fusion with helper threads. */
export interface Split {
  /**
   * Per split tensor, where the caller's share starts: it fuses [start, n), the helpers the
   * coordinates before, so the caller's reads from the start of each file stay in order (hashed
   * as read) only over the tensors it fuses whole.
   */
  ownStart: Map<string, number>
  jobs: HelperJob[]
  /** How every delta is staged for the kernel. */
  format: StagedFormat
  /** Files the caller checks whole while the helpers work. */
  ownVerify: { id: string; file: string }[]
}

export interface SumArgs {
  weights: number[]
  scale: number
  div: number
  chunk: number
}

/**
 * The split of a summing fusion across threads, or undefined when it stays on this thread: one
 * thread configured, deltas neither all q8 in the same blocks nor all f32 (only the kernel's loop is split), a
 * delta helpers cannot read, or no tensor large enough with its base and result in shared memory.
 * Cuts fall on piece boundaries; files are checked whole one per thread in turn.
 */
export function planSplit(base: TensorMap, deltas: readonly FusionDelta[], outputs: ReadonlyMap<string, Float32Array>, ctx: Pick<FusionContext, 'shared' | 'round' | 'baseHash'>, sum: SumArgs): Split | undefined {
  const t = fusionThreads()
  const shared = ctx.shared
  // fuseRound sets `shared` only when helper threads are usable.
  if (!shared || deltas.length === 0) return undefined
  const format = kernelFormat(deltas)
  if (!format) return undefined
  const sources: SharedSource[] = []
  for (const d of deltas) {
    const s = shared.sources.get(d.id)
    if (!s || s.reader !== d.reader) return undefined
    sources.push(s.source)
  }
  const names = sortedNames(base)
  const layout = names.map((name): [string, number[]] => [name, [...base.get(name)!.shape]])
  const jobs: HelperJob[] = Array.from({ length: t - 1 }, () => ({ sources, layout, round: ctx.round, baseHash: ctx.baseHash, ranges: [], ...sum, format, verify: [] }))
  const ownStart = new Map<string, number>()
  const splittable = (name: string) => {
    const b = base.get(name)!.data
    return b.length >= MIN_SPLIT && isShared(b) && isShared(outputs.get(name)!)
  }
  const h = helperShare(names.map((name) => [base.get(name)!.data.length, splittable(name)]), t)
  for (const name of names) {
    if (!splittable(name)) continue
    const b = base.get(name)!.data
    const n = b.length
    const cut = (j: number) => Math.min(n, Math.round((n * j * h) / sum.chunk) * sum.chunk)
    const out = outputs.get(name)!
    const [baseAt, outAt] = [kernelAddress(b), kernelAddress(out)]
    for (let j = 0; j < t - 1; j++) if (cut(j + 1) > cut(j)) jobs[j].ranges.push({ name, lo: cut(j), hi: cut(j + 1), base: b, out, baseAt, outAt })
    ownStart.set(name, cut(t - 1))
  }
  if (ownStart.size === 0) return undefined
  const ownVerify: { id: string; file: string }[] = []
  sources.forEach((s, k) => {
    if ('file' in s) (k % t === 0 ? ownVerify : jobs[(k % t) - 1].verify).push({ id: s.id, file: s.file })
  })
  return { ownStart, jobs, format, ownVerify }
}

/** The deltas' common format for the kernel, from their codecs: q8 in one block size, or f32 (on a little-endian host, as the kernel reads). */
function kernelFormat(deltas: readonly FusionDelta[]): StagedFormat | undefined {
  const B = deltas[0].reader.params.blockSize
  if (deltas.every((d) => d.reader.codec === 'q8-block' && d.reader.params.blockSize === B)) return { kind: 'q8', B: B as number }
  if (littleEndianHost && deltas.every((d) => d.reader.codec === 'f32')) return { kind: 'f32' }
  return undefined
}

/**
 * The fraction of every split tensor each helper fuses, so that all t threads get the same
 * number of values: the caller also fuses the tensors that are not split (small ones) whole, so
 * its share of the split ones is that much smaller (none, if the small ones are a thread's work).
 */
export function helperShare(tensors: readonly (readonly [values: number, split: boolean])[], t: number): number {
  let split = 0
  let whole = 0
  for (const [n, s] of tensors) s ? (split += n) : (whole += n)
  if (t < 2 || split === 0) return 1 / t
  return Math.min(1 / (t - 1), (split + whole) / (t * split))
}
