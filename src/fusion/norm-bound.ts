import type { DeltaReader } from '../codec/index.js'
import type { FusionDelta } from './types.js'

export interface NormBound {
  /** 'clip' scales a delta down to maxNorm; 'reject' leaves it out of the fusion. */
  mode: 'clip' | 'reject'
  maxNorm: number
}

/** The L2 norm of a delta, summed in float64 over tensors in canonical order (deterministic). */
export function deltaNorm(reader: DeltaReader): number {
  let s = 0
  for (const t of reader.tensors) {
    const v = reader.read(t.name)
    for (let i = 0; i < v.length; i++) s += v[i] * v[i]
  }
  return Math.sqrt(s)
}

/**
 * Apply a swarm's norm bound before any rule sees the deltas, so that one delta with a huge norm
 * cannot wreck the base whatever the rule. Same inputs, same decision and same bytes everywhere:
 * the norm is summed in a fixed order, and a clipped value is fround(value * factor).
 */
export function applyNormBound(deltas: FusionDelta[], bound: NormBound): { kept: FusionDelta[]; clipped: string[]; rejected: string[] } {
  const kept: FusionDelta[] = []
  const clipped: string[] = []
  const rejected: string[] = []
  for (const d of deltas) {
    const norm = deltaNorm(d.reader)
    if (norm <= bound.maxNorm) {
      kept.push(d)
    } else if (bound.mode === 'reject') {
      rejected.push(d.id)
    } else {
      clipped.push(d.id)
      kept.push({ ...d, reader: scaledReader(d.reader, bound.maxNorm / norm) })
    }
  }
  return { kept, clipped, rejected }
}

function scaledReader(r: DeltaReader, factor: number): DeltaReader {
  return {
    meta: r.meta,
    codec: r.codec,
    params: r.params,
    byteLength: r.byteLength,
    tensors: r.tensors,
    read(name, out) {
      const v = r.read(name, out)
      for (let i = 0; i < v.length; i++) v[i] = v[i] * factor
      return v
    },
  }
}
