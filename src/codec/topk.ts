import { PayloadError } from '../util/errors.js'
import type { TensorMap } from '../model/tensors.js'
import type { Codec, EncodedSections } from './types.js'
import { checkParams, paramsFromSettings, PPM, type ParamSpec } from './params.js'
import { DEFAULT_BLOCK_SIZE } from './q8block.js'
import { TopKCursor, topKThreshold } from './select.js'
import { VALUE_FORMATS, type ValueFormat } from './values.js'
import { VarintReader, varintSize, writeVarint } from './varint.js'
import { SparseStream } from './stream.js'

/**
 * Top-k sparsification: keep the k = ceil(P * densityPpm / 10^6) largest-magnitude values of the
 * whole delta (chosen globally, across tensors: select.ts), send their positions and values.
 * What is dropped is not lost when the sender uses error feedback (feedback.ts): it joins the
 * next round's delta. Ids: `topk-f32`, `topk-q8`, `topk-q4`, `topk-q1`, by the value format
 * (values.ts) of the kept values, quantized in blocks of B kept values.
 *
 * Section per tensor (all little-endian / LEB128):
 *   varint m                 number of kept values (m <= n)
 *   m varints                gaps: the first index, then index[j] - index[j-1] - 1
 *   value bytes              the value format's encoding of the m kept values, in index order
 * At 1-5% density most gaps are below 128, so a position costs one byte.
 */

export const DEFAULT_DENSITY_PPM = 20_000

function sparseCodec(format: ValueFormat): Codec {
  const id = `topk-${format.name}`
  const spec: ParamSpec = format.name === 'f32' ? { densityPpm: DEFAULT_DENSITY_PPM } : { blockSize: DEFAULT_BLOCK_SIZE, densityPpm: DEFAULT_DENSITY_PPM }
  const blockOf = (params: Readonly<Record<string, number>>) => params.blockSize ?? 1
  return {
    id,
    layoutDigest: true,
    paramsFromSettings: (settings) => paramsFromSettings(id, settings, spec),
    checkParams: (raw) => checkParams(id, raw, spec),

    encode(delta: TensorMap, names, params): EncodedSections {
      const B = blockOf(params)
      const arrays = names.map((n) => delta.get(n)!.data)
      let total = 0
      for (const a of arrays) total += a.length
      let top
      try {
        top = topKThreshold(arrays, Math.ceil((total * params.densityPpm) / PPM))
      } catch (err) {
        const m = /^array (\d+) (.*)$/.exec((err as Error).message)
        throw m ? new RangeError(`delta tensor ${names[Number(m[1])]}: ${m[2]}`) : err
      }
      const cursor = new TopKCursor(top)
      const sections: Uint8Array[] = []
      const reconstruction: TensorMap = new Map()
      names.forEach((name, j) => {
        const v = arrays[j]
        const idx = cursor.indices(v)
        const m = idx.length
        const kept = new Float32Array(m)
        for (let i = 0; i < m; i++) kept[i] = v[idx[i]]
        let head = varintSize(m)
        for (let i = 0, prev = -1; i < m; prev = idx[i++]) head += varintSize(idx[i] - prev - 1)
        const bytes = new Uint8Array(head + format.size(m, B))
        let pos = writeVarint(bytes, 0, m)
        for (let i = 0, prev = -1; i < m; prev = idx[i++]) pos = writeVarint(bytes, pos, idx[i] - prev - 1)
        const rec = new Float32Array(m)
        format.encode(kept, bytes.subarray(pos), rec, B)
        const full = new Float32Array(v.length)
        for (let i = 0; i < m; i++) full[idx[i]] = rec[i]
        sections.push(bytes)
        reconstruction.set(name, { shape: [...delta.get(name)!.shape], data: full })
      })
      return { sections, reconstruction }
    },

    checkSection(n, byteLength, params) {
      const max = 5 + 5 * n + format.size(n, blockOf(params))
      return byteLength >= 1 && byteLength <= max ? null : `${byteLength} bytes is not a possible ${id} section for ${n} values (1..${max})`
    },

    // Every rejection comes from parsing the kept values; the scatter into n values cannot fail.
    validate(section, n, params) {
      parseSparse(format, section, n, blockOf(params))
    },

    decodeInto(section, out, params) {
      const { idx, kept } = parseSparse(format, section, out.length, blockOf(params))
      out.fill(0)
      for (let i = 0; i < idx.length; i++) out[idx[i]] = kept[i]
    },

    // The kept values are a small part of the tensor: the stream holds them, decoded, and scatters them piece by piece.
    openStream(section, n, params) {
      const { idx, kept } = parseSparse(format, section.read(0, section.byteLength, -1), n, blockOf(params))
      return new SparseStream(idx, kept)
    },
  }
}

/** Positions (ascending, checked) and decoded values of a sparse section. */
function parseSparse(format: ValueFormat, section: Uint8Array, n: number, B: number): { idx: Int32Array; kept: Float32Array } {
  const r = new VarintReader(section, 0, section.length)
  const m = r.next()
  if (m > n) throw new PayloadError(`${m} kept values in a tensor of ${n}`, 'malformed')
  const idx = new Int32Array(m)
  for (let i = 0, prev = -1; i < m; i++) {
    const at = prev + 1 + r.next()
    if (at >= n) throw new PayloadError(`index ${at} is outside the tensor (${n} values)`, 'malformed')
    idx[i] = prev = at
  }
  const need = format.size(m, B)
  if (section.length - r.pos !== need) throw new PayloadError(`${section.length - r.pos} value bytes for ${m} kept values (need ${need})`, 'malformed')
  const kept = new Float32Array(m)
  format.decode(section.subarray(r.pos), kept, B)
  return { idx, kept }
}

export const topkF32Codec = sparseCodec(VALUE_FORMATS.f32)
export const topkQ8Codec = sparseCodec(VALUE_FORMATS.q8)
export const topkQ4Codec = sparseCodec(VALUE_FORMATS.q4)
export const topkQ1Codec = sparseCodec(VALUE_FORMATS.q1)
