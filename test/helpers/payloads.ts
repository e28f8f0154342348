import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DeltaRejectedError, type DeltaFileInput, type DeltaInput } from '../../src/fusion/index.js'

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

/**
 * A temporary directory for the enclosing describe block (made before its tests, removed after),
 * with `path` of a file in it and `toFiles`, which writes in-memory deltas to files there.
 */
export function deltaFileDir(prefix: string): { path(name: string): string; toFiles(ds: DeltaInput[]): DeltaFileInput[] } {
  let dir = ''
  before(() => {
    dir = mkdtempSync(join(tmpdir(), prefix))
  })
  after(() => rmSync(dir, { recursive: true, force: true }))
  const path = (name: string) => join(dir, name)
  return {
    path,
    toFiles: (ds) =>
      ds.map((d) => {
        const file = path(`${d.id}.cfd`)
        writeFileSync(file, d.payload)
        return { id: d.id, file, examples: d.examples }
      }),
  }
}
