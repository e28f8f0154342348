import type { SwarmDefinition } from '../config/swarm.js'
import { encodeDelta, ErrorFeedback, feedbackByDefault, validateDelta, type CodecSettings } from '../codec/index.js'
import { fuseRound, tensorArray } from '../fusion/index.js'
import { decodeSafetensors, encodeSafetensors } from '../model/safetensors.js'
import type { TensorMap } from '../model/tensors.js'
import type { FusionPorts } from '../rounds/runner.js'
import type { Logger } from '../util/log.js'

/** Whether this swarm's nodes keep an error-feedback residual (the swarm's choice, else the codec's default). */
export function usesErrorFeedback(def: SwarmDefinition): boolean {
  return def.compression.errorFeedback ?? feedbackByDefault(def.compression.codec)
}

/** This node's residual (in `file`, e.g. <home>/feedback.safetensors), or undefined if the swarm does not use error feedback. */
export async function loadErrorFeedback(def: SwarmDefinition, file: string, layout: TensorMap, log: Logger): Promise<ErrorFeedback | undefined> {
  if (!usesErrorFeedback(def)) return undefined
  return ErrorFeedback.load(file, layout, (why) => log.warn({ file, why }, 'error-feedback residual dropped; starting from zero'))
}

/**
 * The codec and fusion rule named by the swarm definition, as the round protocol uses them.
 * With `feedback`, encodeDelta sends delta + residual and stages the new residual;
 * settleDelta(id, fused) keeps it once the round is decided (fused) or forgets it (dropped).
 */
export function fusionPorts(def: SwarmDefinition, layout: TensorMap, feedback?: ErrorFeedback): FusionPorts & { settleDelta(id: string, fused: boolean): Promise<void> } {
  const codec: CodecSettings = { codec: def.compression.codec, blockSize: def.compression.blockSize, densityPpm: def.compression.densityPpm }
  let staged: string | undefined
  return {
    encodeDelta: (delta, meta) => {
      if (!feedback) return encodeDelta(delta, codec, meta).payload
      const sent = feedback.apply(delta)
      const enc = encodeDelta(sent, codec, meta)
      feedback.update(sent, enc.reconstruction)
      staged = enc.deltaId
      return enc.payload
    },
    settleDelta: async (id, fused) => {
      if (!feedback || id !== staged) return
      staged = undefined
      if (fused) await feedback.commit()
      else feedback.discard()
    },
    checkDelta: (payload, expect) => {
      validateDelta(payload, { layout, round: expect.round, baseHash: expect.baseHash, maxBytes: def.rounds.maxDeltaBytes })
    },
    // `verified`: every delta in the node's store passed checkDelta with its sha256 checked on arrival
    // (our own are encoded here), so in-memory payloads are not hashed again; files are checked
    // against their id as fusion reads them.
    fuse: (base, deltas, baseHash, into) =>
      fuseRound(base, deltas, { rule: def.fusion.rule, params: def.fusion.params, normBound: def.fusion.normBound, maxBytes: def.rounds.maxDeltaBytes, baseHash, verified: true, into }),
    encodeBase: (base) => encodeSafetensors(base),
    // Large tensors in shared memory, so fusion's helper threads can read the base.
    decodeBase: (bytes) => decodeSafetensors(bytes, 'checkpoint', { alloc: tensorArray }).tensors,
  }
}
