export type { Codec, CodecParams, CodecSettings, DeltaMeta, EncodedSections } from './types.js'
export { registerCodec, getCodec, codecIds } from './registry.js'
export { f32Codec } from './f32.js'
export { q8BlockCodec, DEFAULT_BLOCK_SIZE } from './q8block.js'
export {
  encodeDelta,
  openDelta,
  decodeDelta,
  decodeDeltaInto,
  validateDelta,
  DELTA_MAGIC,
  DELTA_FORMAT_VERSION,
  DEFAULT_MAX_VALUES,
  type DecodeExpect,
  type DeltaReader,
  type EncodedDelta,
  type Layout,
  type TensorEntry,
} from './container.js'
export { residual, addInto } from './feedback.js'
