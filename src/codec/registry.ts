import type { Codec } from './types.js'
import { f32Codec } from './f32.js'
import { q8BlockCodec } from './q8block.js'
import { q1BlockCodec, q4BlockCodec } from './dense.js'
import { topkF32Codec, topkQ1Codec, topkQ4Codec, topkQ8Codec } from './topk.js'

/** Codecs by id. The id is written into every payload, so an id must never change meaning. */
const codecs = new Map<string, Codec>()

/** Codec ids travel in a 1-byte-length ASCII field: keep them short and plain. */
export const CODEC_ID_PATTERN = /^[a-z0-9][a-z0-9.-]{0,31}$/

export function registerCodec(codec: Codec): void {
  if (!CODEC_ID_PATTERN.test(codec.id)) throw new RangeError(`codec id ${JSON.stringify(codec.id)} must match ${CODEC_ID_PATTERN}`)
  if (codecs.has(codec.id) && codecs.get(codec.id) !== codec) throw new RangeError(`codec ${codec.id} is already registered`)
  codecs.set(codec.id, codec)
}

export function getCodec(id: string): Codec | undefined {
  return codecs.get(id)
}

export function codecIds(): string[] {
  return [...codecs.keys()].sort()
}

for (const c of [f32Codec, q8BlockCodec, q4BlockCodec, q1BlockCodec, topkF32Codec, topkQ8Codec, topkQ4Codec, topkQ1Codec]) registerCodec(c)
