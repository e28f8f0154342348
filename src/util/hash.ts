import { createHash } from 'node:crypto'

/** Hex sha256 of bytes: the content address of checkpoints, deltas and swarm definitions. */
export function sha256Hex(...parts: Uint8Array[]): string {
  const h = createHash('sha256')
  for (const p of parts) h.update(p)
  return h.digest('hex')
}

export function isHex64(s: unknown): s is string {
  return typeof s === 'string' && /^[0-9a-f]{64}$/.test(s)
}
