import type { TensorMap } from '../model/tensors.js'
import type { Codec, EncodedSections } from './types.js'
import { checkParams, paramsFromSettings } from './params.js'
import { q1Values, q4Values, valueStream, type ValueFormat } from './values.js'
import { DEFAULT_BLOCK_SIZE } from './q8block.js'

/**
 * Dense blockwise codecs: every value of every tensor, quantized by a value format (values.ts).
 * `q4-block`: 4-bit symmetric, about 7.8x smaller than float32 at B = 256.
 * `q1-block`: sign with a per-block scale, about 28x smaller; meant for use with error feedback.
 * Section: the format's bytes for the whole tensor (size fixed by n and B).
 */
function denseCodec(id: string, format: ValueFormat): Codec {
  const spec = { blockSize: DEFAULT_BLOCK_SIZE }
  return {
    id,
    layoutDigest: true,
    paramsFromSettings: (settings) => paramsFromSettings(id, settings, spec),
    checkParams: (raw) => checkParams(id, raw, spec),
    encode(delta: TensorMap, names, params): EncodedSections {
      const sections: Uint8Array[] = []
      const reconstruction: TensorMap = new Map()
      for (const name of names) {
        const t = delta.get(name)!
        const bytes = new Uint8Array(format.size(t.data.length, params.blockSize))
        const rec = new Float32Array(t.data.length)
        try {
          format.encode(t.data, bytes, rec, params.blockSize)
        } catch (err) {
          throw new RangeError(`delta tensor ${name}: ${(err as Error).message}`)
        }
        sections.push(bytes)
        reconstruction.set(name, { shape: [...t.shape], data: rec })
      }
      return { sections, reconstruction }
    },
    checkSection(n, byteLength, params) {
      const need = format.size(n, params.blockSize)
      return byteLength === need ? null : `${byteLength} bytes cannot hold ${n} ${id} values (need ${need})`
    },
    decodeInto(section, out, params) {
      format.decode(section, out, params.blockSize)
    },
    openStream: (section, n, params) => valueStream(format.name, section, n, params.blockSize),
  }
}

export const q4BlockCodec = denseCodec('q4-block', q4Values)
export const q1BlockCodec = denseCodec('q1-block', q1Values)
