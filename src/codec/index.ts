export type { Codec, CodecParams, CodecSettings, DeltaMeta, EncodedSections, SectionSource, SectionStream } from './types.js'
export { registerCodec, getCodec, codecIds } from './registry.js'
export { CODEC_IDS, type CodecId, isSparseCodec, feedbackByDefault } from './ids.js'
export { f32Codec } from './f32.js'
export { q8BlockCodec, DEFAULT_BLOCK_SIZE } from './q8block.js'
export { q4BlockCodec, q1BlockCodec } from './dense.js'
export { topkF32Codec, topkQ8Codec, topkQ4Codec, topkQ1Codec, DEFAULT_DENSITY_PPM } from './topk.js'
export {
  encodeDelta,
  openDelta,
  openDeltaSource,
  payloadDigests,
  PayloadHasher,
  decodeDelta,
  decodeDeltaInto,
  validateDelta,
  layoutDigest,
  DELTA_MAGIC,
  DELTA_FORMAT_VERSION,
  DELTA_FORMAT_VERSIONS,
  DEFAULT_MAX_VALUES,
  type DecodeExpect,
  type DeltaReader,
  type EncodedDelta,
  type OpenOptions,
  type PayloadSource,
  type Layout,
  type TensorEntry,
} from './container.js'
export { residual, addInto, ErrorFeedback } from './feedback.js'
export { FileBytes } from './file-bytes.js'
