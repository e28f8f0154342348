/** Codec ids a swarm definition may name; each is registered in registry.ts. */
export const CODEC_IDS = ['q8-block', 'f32', 'q4-block', 'q1-block', 'topk-f32', 'topk-q8', 'topk-q4', 'topk-q1'] as const
export type CodecId = (typeof CODEC_IDS)[number]

/** Sparse codecs take `densityPpm`. */
export function isSparseCodec(id: string): boolean {
  return id.startsWith('topk-')
}

/**
 * Whether a node keeps an error-feedback residual when the swarm does not say: on for the
 * codecs that drop much of each delta (sparse, 4-bit, 1-bit); off for f32 (lossless) and
 * q8-block (under 1% error), so existing swarms behave as before.
 */
export function feedbackByDefault(id: string): boolean {
  return id !== 'f32' && id !== 'q8-block'
}
