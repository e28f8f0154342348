import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { mulberry32 } from '../../src/data/rng.js'
import { DeltaRejectedError, type DeltaFileInput, type DeltaInput } from '../../src/fusion/index.js'
import type { TensorMap } from '../../src/model/tensors.js'

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

/**
 * Seeded tensors of the given shapes, values uniform in [-scale, scale), with a run of zeros
 * (coordinates 100 to 399) in tensors longer than 400: zero-scale blocks and dropped positions.
 */
export function seededTensors(shapes: Record<string, number[]>, seed: number, scale: number): TensorMap {
  const r = mulberry32(seed)
  const t: TensorMap = new Map()
  for (const [name, shape] of Object.entries(shapes)) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1))
    for (let i = 0; i < data.length; i++) data[i] = (r() * 2 - 1) * scale
    if (data.length > 400) data.fill(0, 100, 400)
    t.set(name, { shape, data })
  }
  return t
}
