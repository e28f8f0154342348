import type { DeltaReader, SectionStream } from '../codec/index.js'
import { FUSE_INPUTS, q8Kernel, type Q8Kernel } from '../codec/wasm-q8.js'
import { sortedNames, type TensorMap } from '../model/tensors.js'
import { copyArray } from '../util/copy.js'
import { kernelAddress } from '../codec/kernel-arena.js'
import { planSplit } from './split.js'
import { runWithHelpers, verifyFiles } from './threads.js'
import type { FusionContext, FusionDelta } from './types.js'

/**
 * Coordinates per piece. A piece's float64 sums (512 KiB) stay in cache while every delta's
 * values for it are added, and each delta is read one piece at a time.
 */
export const CHUNK = 1 << 16

/** What a summing rule does around the sum; see fuseBySum. */
export interface SumPlan {
  /** new = Math.fround(base + (scale * sum) / div): the mean is {scale: 1, div: N}. */
  scale: number
  div: number
  /** acc += weights[k] * value for delta k (given order); 1 when omitted (the value as it is). */
  weights?: readonly number[]
  /**
   * Instead of the weighted add: per delta and tensor, a stateful adder of the decoded values of
   * each piece (e.g. DARE's seeded mask, whose random stream runs over the tensor in order).
   */
  adder?: (k: number, name: string) => (acc: Float64Array, values: Float32Array, count: number) => void
}

/**
 * The loop of the summing rules (mean, weighted mean, task arithmetic, DARE). Per coordinate:
 * the float64 sum of each delta's float32 value (times its weight) in the given (id) order,
 * then `base + (scale * sum) / div` rounded once to float32. Work goes tensor by tensor, piece
 * by piece (`chunk` coordinates): every delta's piece is added (streamed, fused with decoding
 * where the codec can) into one small accumulator before the next piece. The result does not
 * depend on `chunk`: each coordinate sees the same additions in the same order.
 */
export function fuseBySum(base: TensorMap, deltas: readonly FusionDelta[], plan: SumPlan, ctx: Pick<FusionContext, 'chunk' | 'output' | 'shared' | 'round' | 'baseHash'>): TensorMap {
  const chunk = ctx.chunk ?? CHUNK
  const { scale, div } = plan
  const weights = deltas.map((_, k) => plan.weights?.[k] ?? 1)
  // In the SIMD kernel's memory when there is one, so q8 pieces are added by it (same sums).
  const kernel = q8Kernel()
  const acc = kernel?.accumulator(chunk) ?? new Float64Array(chunk)
  const scratch = plan.adder ? new Float32Array(chunk) : undefined
  const names = sortedNames(base)
  const outputs = new Map(names.map((name) => [name, ctx.output(name, base.get(name)!.data.length)]))
  const split = kernel && !plan.adder ? planSplit(base, deltas, outputs, ctx, { weights, scale, div, chunk }) : undefined
  const readers = deltas.map((d) => d.reader)
  const staged: KernelSum | undefined = split && { kernel: kernel!, weights, format: split.format, chunk, scale, div }
  const out: TensorMap = new Map()
  const fuseOwn = () => {
    for (const name of names) out.set(name, { shape: [...base.get(name)!.shape], data: sumTensor(name, split?.ownStart.get(name)) })
    if (split) for (const id of verifyFiles(split.ownVerify)) ctx.shared!.verified.add(id)
  }
  if (!split) {
    fuseOwn()
    return out
  }
  runWithHelpers(split.jobs, fuseOwn).forEach((r, j) => {
    if (r.ok) for (const id of r.verified) ctx.shared!.verified.add(id)
    // A helper that failed: its share is done here, where a bad delta is named as without helpers.
    else for (const g of split.jobs[j].ranges) fuseRange(readers, g.name, g.base, g.out, g.lo, g.hi, staged!)
  })
  return out

  /** Tensor `name`, or with `start` (a split tensor) its coordinates [start, n), the rest being the helpers'. */
  function sumTensor(name: string, start?: number): Float32Array {
    const b = base.get(name)!.data
    const n = b.length
    const data = outputs.get(name)!
    if (start !== undefined) {
      fuseRange(readers, name, b, data, start, n, staged!)
      return data
    }
    const streams = deltas.map((d) => d.reader.stream(name))
    const adders = plan.adder ? deltas.map((_, k) => plan.adder!(k, name)) : undefined
    // Every delta q8 in the same blocks, or every one float32: the kernel adds them all per piece, sums in registers.
    const format = kernel && !adders ? stagedFormat(streams) : undefined
    if (format) {
      fuseStaged(kernel!, streams, weights, format, b, data, chunk, scale, div)
      return data
    }
    // The first delta may set the sums (0 + value, the same as adding to zeros) without reading them.
    const first = adders ? undefined : streams[0]?.set
    for (let start = 0; start < n; start += chunk) {
      const count = Math.min(chunk, n - start)
      if (first) first.call(streams[0], acc, count, weights[0])
      else acc.fill(0, 0, count)
      for (let k = first ? 1 : 0; k < streams.length; k++) {
        if (adders) {
          streams[k].decode(scratch!, count)
          adders[k](acc, scratch!, count)
        } else {
          streams[k].add(acc, count, weights[k])
        }
      }
      if (kernel) {
        // The same arithmetic in SIMD, on a copy of the base's piece in the kernel's memory.
        const area = kernel.baseArea()
        copyArray(area, b.subarray(start, start + count))
        kernel.finish(acc, count, scale, div)
        copyArray(data, area.subarray(0, count), start)
      } else {
        for (let i = 0; i < count; i++) data[start + i] = b[start + i] + (scale * acc[i]) / div
      }
    }
    return data
  }
}

/** How the kernel reads a piece of every delta: q8 in blocks of B, or float32. */
export type StagedFormat = { kind: 'q8'; B: number } | { kind: 'f32' }

/** The format every stream can be staged in for the kernel, or undefined (the JS loop adds them). */
export function stagedFormat(streams: readonly SectionStream[]): StagedFormat | undefined {
  const stageable = streams.every((s) => s.stage && s.check)
  const B = streams[0]?.q8Block
  if (!stageable || streams.length === 0) return undefined
  if (B !== undefined) return streams.every((s) => s.q8Block === B) ? { kind: 'q8', B } : undefined
  return streams.every((s) => s.f32Kernel) ? { kind: 'f32' } : undefined
}

const formatName = (f: StagedFormat) => (f.kind === 'q8' ? `q8 in blocks of ${f.B}` : 'float32')
const sameFormat = (a: StagedFormat, b: StagedFormat) => a.kind === b.kind && (a.kind === 'f32' || a.B === (b as typeof a).B)

/** What fuseRange needs besides the range: the kernel, the weights, the format, the piece size and the finish. */
export interface KernelSum {
  kernel: Q8Kernel
  weights: readonly number[]
  format: StagedFormat
  chunk: number
  scale: number
  div: number
}

/**
 * Coordinates [lo, hi) of tensor `name` (base `b`, result `out`), from every reader's stream
 * moved to lo: one thread's share of a split tensor, on the calling thread or a helper.
 */
export function fuseRange(readers: readonly DeltaReader[], name: string, b: Float32Array, out: Float32Array, lo: number, hi: number, s: KernelSum): void {
  const streams = readers.map((r) => r.stream(name))
  const f = stagedFormat(streams)
  if (!f || !sameFormat(f, s.format) || !streams.every((x) => x.skip)) throw new Error(`tensor ${name}: not every delta is ${formatName(s.format)}`)
  for (const x of streams) x.skip!(lo)
  fuseStaged(s.kernel, streams, s.weights, s.format, b, out, s.chunk, s.scale, s.div, lo, hi)
}

/**
 * fuseBySum's loop for deltas that all have one staged format, over coordinates [lo, hi) of one
 * tensor (the streams stand at lo): per piece, up to FUSE_INPUTS deltas at a time are staged in
 * the kernel's memory and added by one call (the first group from 0, the last one finishing into
 * the base's piece). The same additions in the same order per coordinate, wherever a range starts.
 */
export function fuseStaged(kernel: Q8Kernel, streams: SectionStream[], weights: readonly number[], format: StagedFormat, b: Float32Array, data: Float32Array, chunk: number, scale: number, div: number, lo = 0, hi = b.length): void {
  const groups: { streams: SectionStream[]; weights?: number[] }[] = []
  for (let g = 0; g < streams.length; g += FUSE_INPUTS) {
    const w = weights.slice(g, g + FUSE_INPUTS)
    // Weights of 1 need no multiply (1 * x is x).
    groups.push({ streams: streams.slice(g, g + FUSE_INPUTS), weights: w.some((x) => x !== 1) ? w : undefined })
  }
  const area = kernel.baseArea()
  // A base and result in the kernel arena are read and written in place; else through the base area.
  const baseAt = kernel.arena ? kernelAddress(b) : undefined
  const outAt = kernel.arena ? kernelAddress(data) : undefined
  for (let start = lo; start < hi; start += chunk) {
    const count = Math.min(chunk, hi - start)
    for (let g = 0; g < groups.length; g++) {
      const group = groups[g].streams
      let ok = true
      for (let k = 0; k < group.length; k++) ok = group[k].stage!(k, count) && ok
      const last = g === groups.length - 1
      if (last && baseAt === undefined) copyArray(area, b.subarray(start, start + count))
      const ends = last ? { base: baseAt === undefined ? area.byteOffset : baseAt + 4 * start, out: outAt === undefined ? area.byteOffset : outAt + 4 * start } : undefined
      const w = groups[g].weights
      const flagged =
        format.kind === 'q8'
          ? kernel.fuse(count, group.length, start % format.B, format.B, w, g === 0, last, scale, div, ends)
          : kernel.fuseF32(count, group.length, w, g === 0, last, scale, div, ends)
      if (flagged !== 0 || !ok) {
        // Name the first error in delta order, as adding delta by delta would.
        for (let k = 0; k < group.length; k++) group[k].check!(k, count)
        // Float32 sums of finite values can still overflow (huge weights), as in the JS loop.
        if (format.kind === 'q8') throw new Error('q8 kernel: a piece was flagged but holds no error')
      }
      if (last && outAt === undefined) copyArray(data, area.subarray(0, count), start)
    }
  }
}
