import { PayloadError } from '../util/errors.js'
import type { TensorMap } from '../model/tensors.js'
import type { Codec, CodecParams, EncodedSections } from './types.js'
import { readF32LE, writeF32LE } from './le.js'
import { F32Stream } from './stream.js'

/** `f32`: dense little-endian float32, lossless. Section = 4 bytes per value. */
export const f32Codec: Codec = {
  id: 'f32',

  paramsFromSettings(): CodecParams {
    return {}
  },

  checkParams(raw): CodecParams {
    const keys = Object.keys(raw)
    if (keys.length !== 0) throw new PayloadError(`codec f32 takes no params, got ${keys.join(', ')}`, 'malformed')
    return {}
  },

  encode(delta: TensorMap, names: readonly string[]): EncodedSections {
    const sections: Uint8Array[] = []
    const reconstruction: TensorMap = new Map()
    for (const name of names) {
      const t = delta.get(name)!
      for (let i = 0; i < t.data.length; i++) {
        if (!Number.isFinite(t.data[i])) throw new RangeError(`delta tensor ${name}[${i}] is ${t.data[i]}: refusing to encode a non-finite delta`)
      }
      const bytes = new Uint8Array(t.data.length * 4)
      writeF32LE(t.data, bytes, 0)
      sections.push(bytes)
      reconstruction.set(name, { shape: [...t.shape], data: new Float32Array(t.data) })
    }
    return { sections, reconstruction }
  },

  checkSection(n, byteLength) {
    return byteLength === n * 4 ? null : `${byteLength} bytes cannot hold ${n} float32 values (need ${n * 4})`
  },

  decodeInto(section, out) {
    readF32LE(section, out)
    for (let i = 0; i < out.length; i++) {
      if (!Number.isFinite(out[i])) throw new PayloadError(`value ${i} is not finite (${out[i]})`, 'non-finite')
    }
  },

  openStream: (section) => new F32Stream(section),
}
