import { sortedNames, type TensorMap } from '../model/tensors.js'

/**
 * Error feedback (as in 1-bit SGD / EF-SGD): what compression dropped this round is kept locally
 * and added to the next round's delta, so quantization errors do not accumulate as bias.
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
