import { readFile } from 'node:fs/promises'
import { decodeSafetensors, encodeSafetensors } from '../model/safetensors.js'
import { sortedNames, type TensorMap } from '../model/tensors.js'
import { writeFileAtomic } from '../util/atomic.js'
import type { Layout } from './container.js'

/**
 * Error feedback (as in 1-bit SGD / EF-SGD): what compression dropped this round is kept locally
 * and added to the next round's delta, so quantization and sparsification errors are delayed,
 * not lost. This is what lets top-k and 1-bit codecs train almost like float32.
 */

/** residual = delta - reconstruction (float32), per tensor. */
export function residual(delta: TensorMap, reconstruction: TensorMap): TensorMap {
  const out: TensorMap = new Map()
  for (const name of sortedNames(delta)) {
    const d = delta.get(name)!
    const r = reconstruction.get(name)
    if (!r || r.data.length !== d.data.length) throw new RangeError(`reconstruction lacks tensor ${name} or has another size`)
    const data = new Float32Array(d.data.length)
    for (let i = 0; i < data.length; i++) data[i] = d.data[i] - r.data[i]
    out.set(name, { shape: [...d.shape], data })
  }
  return out
}

/** target += add, in place (e.g. delta += previous residual before encoding). */
export function addInto(target: TensorMap, add: TensorMap): void {
  for (const name of sortedNames(target)) {
    const t = target.get(name)!
    const a = add.get(name)
    if (!a) continue
    if (a.data.length !== t.data.length) throw new RangeError(`tensor ${name}: sizes differ (${t.data.length} vs ${a.data.length})`)
    for (let i = 0; i < t.data.length; i++) t.data[i] += a.data[i]
  }
}

/**
 * One node's residual across rounds. A round's residual is staged by `update` and becomes the
 * one `apply` adds only at `commit`, i.e. once the node knows its delta was fused: a delta the
 * swarm dropped must not shift the residual. The committed residual lives in a safetensors file
 * in the node home, replaced atomically, so a restart keeps it.
 */
export class ErrorFeedback {
  private staged?: TensorMap

  private constructor(
    private readonly file: string | undefined,
    private current: TensorMap | undefined,
  ) {}

  /** A residual kept in memory only (simulations, tests). */
  static inMemory(): ErrorFeedback {
    return new ErrorFeedback(undefined, undefined)
  }

  /**
   * The residual saved in `file`, or none: a missing file is a first start; an unreadable one,
   * or one for other tensors (another model), is dropped and `onReset` says why.
   */
  static async load(file: string, layout: Layout, onReset?: (why: string) => void): Promise<ErrorFeedback> {
    let buf: Buffer
    try {
      buf = await readFile(file)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') onReset?.(`cannot read ${file}: ${(err as Error).message}`)
      return new ErrorFeedback(file, undefined)
    }
    try {
      const tensors = decodeSafetensors(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength), file).tensors
      const problem = layoutProblem(tensors, layout)
      if (problem) {
        onReset?.(`${file}: ${problem}`)
        return new ErrorFeedback(file, undefined)
      }
      return new ErrorFeedback(file, tensors)
    } catch (err) {
      onReset?.((err as Error).message)
      return new ErrorFeedback(file, undefined)
    }
  }

  /** delta + committed residual, as new tensors (the delta is not changed). */
  apply(delta: TensorMap): TensorMap {
    const out: TensorMap = new Map()
    for (const name of sortedNames(delta)) {
      const d = delta.get(name)!
      const data = new Float32Array(d.data)
      const r = this.current?.get(name)
      if (r && r.data.length === data.length) for (let i = 0; i < data.length; i++) data[i] += r.data[i]
      out.set(name, { shape: [...d.shape], data })
    }
    return out
  }

  /** Stage sent - reconstruction (what the receivers will not see) as the next residual. */
  update(sent: TensorMap, reconstruction: TensorMap): void {
    this.staged = residual(sent, reconstruction)
  }

  /** The staged residual becomes the one `apply` adds, and is saved (atomically) if file-backed. */
  async commit(): Promise<void> {
    if (!this.staged) return
    this.current = this.staged
    this.staged = undefined
    if (this.file) await writeFileAtomic(this.file, encodeSafetensors(this.current))
  }

  /** Forget the staged residual (its delta was not fused). */
  discard(): void {
    this.staged = undefined
  }

  /** The committed residual (undefined before the first commit). */
  get residual(): TensorMap | undefined {
    return this.current
  }
}

function layoutProblem(t: TensorMap, layout: Layout): string | null {
  const want = [...layout.keys()].sort()
  const have = sortedNames(t)
  if (want.join('\n') !== have.join('\n')) return `its tensors are not the model's (${have.length} tensors, expected ${want.length})`
  for (const name of want) {
    const a = t.get(name)!.shape
    const b = layout.get(name)!.shape
    if (a.length !== b.length || a.some((d, i) => d !== b[i])) return `tensor ${name} has shape [${a}], expected [${b}]`
  }
  return null
}
