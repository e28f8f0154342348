import { safetensorsParts } from '../model/safetensors.js'
import type { TensorMap } from '../model/tensors.js'
import { sha256Hex } from '../util/hash.js'

/** The content address of a base: sha256 of its canonical safetensors bytes (no metadata), hashed part by part. */
export function hashTensors(t: TensorMap): string {
  return sha256Hex(...safetensorsParts(t))
}
