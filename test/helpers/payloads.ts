import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { DeltaRejectedError } from '../../src/fusion/index.js'

/** Run `fn`, expect a DeltaRejectedError with this reason, and return it. */
export function rejected(fn: () => unknown, reason: string): DeltaRejectedError {
  try {
    fn()
  } catch (err) {
    assert.ok(err instanceof DeltaRejectedError, `expected DeltaRejectedError, got ${(err as Error).stack}`)
    assert.equal(err.reason, reason, err.message)
    return err
  }
  assert.fail('expected a rejection')
}

/** Rewrite a payload's checksum after an edit, so only the edited values are wrong. */
export function resealed(p: Uint8Array): Uint8Array {
  const q = new Uint8Array(p)
  q.set(createHash('sha256').update(q.subarray(0, q.length - 8)).digest().subarray(0, 8), q.length - 8)
  return q
}
