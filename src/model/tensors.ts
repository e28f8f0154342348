/**
 * Named float32 tensors: the common currency between the model, the codec, fusion and the store.
 * Names follow Hugging Face conventions (e.g. `encoder.layer.0.attention.self.query.weight`),
 * linear weights are [out, in] as in PyTorch. Canonical order is the names sorted by code unit.
 */
export interface Tensor {
  shape: number[]
  data: Float32Array
}

export type TensorMap = Map<string, Tensor>

export function numel(shape: readonly number[]): number {
  let n = 1
  for (const d of shape) n *= d
  return n
}

export function sortedNames(t: TensorMap): string[] {
  return [...t.keys()].sort()
}

export function totalParams(t: TensorMap): number {
  let n = 0
  for (const v of t.values()) n += v.data.length
  return n
}

export function cloneTensors(t: TensorMap): TensorMap {
  const out: TensorMap = new Map()
  for (const name of sortedNames(t)) {
    const v = t.get(name)!
    out.set(name, { shape: [...v.shape], data: new Float32Array(v.data) })
  }
  return out
}

/** Keep only the tensors whose name passes the filter (e.g. the shared body, without heads). */
export function selectTensors(t: TensorMap, keep: (name: string) => boolean): TensorMap {
  const out: TensorMap = new Map()
  for (const name of sortedNames(t)) if (keep(name)) out.set(name, t.get(name)!)
  return out
}

/** Throws unless `b` has exactly the names and shapes of `a`. */
export function assertSameLayout(a: TensorMap, b: TensorMap, what = 'tensors'): void {
  const an = sortedNames(a)
  const bn = sortedNames(b)
  if (an.length !== bn.length) throw new Error(`${what}: expected ${an.length} tensors, got ${bn.length}`)
  for (let i = 0; i < an.length; i++) {
    if (an[i] !== bn[i]) throw new Error(`${what}: tensor name mismatch: expected ${an[i]}, got ${bn[i]}`)
    const as = a.get(an[i])!.shape
    const bs = b.get(bn[i])!.shape
    if (as.length !== bs.length || as.some((d, j) => d !== bs[j])) {
      throw new Error(`${what}: shape mismatch for ${an[i]}: expected [${as}], got [${bs}]`)
    }
  }
}
