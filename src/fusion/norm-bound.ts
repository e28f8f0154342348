import type { DeltaReader } from '../codec/index.js'
import type { FusionDelta } from './types.js'
import { CHUNK } from './accumulate.js'

export interface NormBound {
  /** 'clip' scales a delta down to maxNorm; 'reject' leaves it out of the fusion. */
  mode: 'clip' | 'reject'
  maxNorm: number
}

/** The L2 norm of a delta, summed in float64 over tensors in canonical order (deterministic). */
export function deltaNorm(reader: DeltaReader, chunk = CHUNK): number {
  const v = new Float32Array(chunk)
  let s = 0
  for (const t of reader.tensors) {
    const stream = reader.stream(t.name)
    for (let start = 0; start < t.numel; start += chunk) {
      const count = Math.min(chunk, t.numel - start)
      stream.decode(v, count)
      for (let i = 0; i < count; i++) s += v[i] * v[i]
    }
  }
  return Math.sqrt(s)
}

/**
 * Apply a swarm's norm bound before any rule sees the deltas, so that one delta with a huge norm
 * cannot wreck the base whatever the rule. Same inputs, same decision and same bytes everywhere:
 * the norm is summed in a fixed order, and a clipped value is fround(value * factor).
 */
export function applyNormBound(deltas: FusionDelta[], bound: NormBound, chunk = CHUNK): { kept: FusionDelta[]; clipped: string[]; rejected: string[] } {
  const kept: FusionDelta[] = []
  const clipped: string[] = []
  const rejected: string[] = []
  for (const d of deltas) {
    const norm = deltaNorm(d.reader, chunk)
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
    // Scaling by a finite factor in (0, 1) keeps valid values valid.
    check: (name, scratch) => r.check(name, scratch),
    stream(name) {
      const inner = r.stream(name)
      let scratch = new Float32Array(0)
      const decode = (out: Float32Array, count: number) => {
        inner.decode(out, count)
        for (let i = 0; i < count; i++) out[i] = out[i] * factor
      }
      return {
        decode,
        add(acc, count, w) {
          if (scratch.length < count) scratch = new Float32Array(count)
          decode(scratch, count)
          for (let i = 0; i < count; i++) acc[i] += w * scratch[i]
        },
      }
    },
  }
}
