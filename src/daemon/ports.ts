import type { SwarmDefinition } from '../config/swarm.js'
import { encodeDelta, validateDelta } from '../codec/index.js'
import { fuseRound } from '../fusion/index.js'
import { decodeSafetensors, encodeSafetensors } from '../model/safetensors.js'
import type { TensorMap } from '../model/tensors.js'
import type { FusionPorts } from '../rounds/runner.js'

/** The codec and fusion rule named by the swarm definition, as the round protocol uses them. */
export function fusionPorts(def: SwarmDefinition, layout: TensorMap): FusionPorts {
  const codec = { codec: def.compression.codec, blockSize: def.compression.blockSize }
  return {
    encodeDelta: (delta, meta) => encodeDelta(delta, codec, meta).payload,
    checkDelta: (payload, expect) => {
      validateDelta(payload, { layout, round: expect.round, baseHash: expect.baseHash, maxBytes: def.rounds.maxDeltaBytes })
    },
    fuse: (base, deltas) => fuseRound(base, deltas, { rule: def.fusion.rule, params: def.fusion.params, normBound: def.fusion.normBound, maxBytes: def.rounds.maxDeltaBytes }),
    encodeBase: (base) => encodeSafetensors(base),
    decodeBase: (bytes) => decodeSafetensors(bytes, 'checkpoint').tensors,
  }
}
