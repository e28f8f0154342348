import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { decodeDelta, encodeDelta, type CodecSettings, type DeltaMeta } from '../src/codec/index.js'
import { fuseRound, hashTensors, type DeltaInput } from '../src/fusion/index.js'
import { encodeSafetensors } from '../src/model/safetensors.js'
import { cloneTensors, type TensorMap } from '../src/model/tensors.js'
import { mulberry32 } from '../src/data/rng.js'
import { rejected } from './helpers/payloads.js'

// A seeded PRNG, so every run (and machine) sees the same cases.
const rng = mulberry32

const SHAPES: Record<string, number[]> = {
  'embeddings.word_embeddings.weight': [300, 64],
  'encoder.layer.0.attention.self.query.weight': [64, 64],
  'encoder.layer.0.attention.self.query.bias': [64],
  'encoder.layer.0.output.LayerNorm.weight': [64],
  'pooler.dense.weight': [64, 64],
}

function randomTensors(seed: number, scale: number, shapes = SHAPES): TensorMap {
  const r = rng(seed)
  const t: TensorMap = new Map()
  for (const [name, shape] of Object.entries(shapes)) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1))
    for (let i = 0; i < data.length; i++) data[i] = (r() * 2 - 1) * scale
    t.set(name, { shape, data })
  }
  return t
}

const base = randomTensors(1, 0.1)
const baseHash = hashTensors(base)

function makeDelta(delta: TensorMap, examples: number, settings: CodecSettings = { codec: 'q8-block' }, meta: Partial<DeltaMeta> = {}): DeltaInput {
  const { payload, deltaId } = encodeDelta(delta, settings, { round: 7, baseHash, examples, ...meta })
  return { id: deltaId, payload, examples }
}

// Five contributors, mixing codecs and block sizes.
const deltas: DeltaInput[] = [0, 1, 2, 3, 4].map((i) =>
  makeDelta(randomTensors(100 + i, 1e-2 * (i + 1)), 50 + i, i === 3 ? { codec: 'f32' } : { codec: 'q8-block', blockSize: 64 * (i + 1) }),
)

function bytesOf(t: TensorMap): Buffer {
  return Buffer.from(encodeSafetensors(t))
}

function permutations<T>(xs: T[]): T[][] {
  if (xs.length <= 1) return [xs]
  return xs.flatMap((x, i) => permutations([...xs.slice(0, i), ...xs.slice(i + 1)]).map((p) => [x, ...p]))
}

describe('fusion', () => {
  const fused = fuseRound(base, deltas)
  const fusedBytes = bytesOf(fused)
  const fusedHash = hashTensors(fused)

  it('computes base + mean of the decoded deltas, rounded once to float32', () => {
    const decoded = [...deltas].sort((a, b) => (a.id < b.id ? -1 : 1)).map((d) => decodeDelta(d.payload).tensors)
    for (const [name, b] of base) {
      const got = fused.get(name)!.data
      for (let i = 0; i < b.data.length; i++) {
        let s = 0
        for (const d of decoded) s += d.get(name)!.data[i]
        assert.equal(got[i], Math.fround(b.data[i] + s / decoded.length))
      }
    }
    assert.equal(fusedHash, createHash('sha256').update(fusedBytes).digest('hex'))
  })

  it('gives bit-identical output for every order of the same deltas', function () {
    this.timeout(30000)
    const all = permutations(deltas)
    const r = rng(5)
    // 120 orders exist; fuse a seeded sample of them plus the reverse.
    const sample = [[...deltas].reverse(), ...all.filter(() => r() < 0.1)]
    assert.ok(sample.length >= 6)
    for (const order of sample) {
      const out = fuseRound(base, order)
      assert.ok(bytesOf(out).equals(fusedBytes))
      assert.equal(hashTensors(out), fusedHash)
    }
  })

  it('gives the same hash in a separate process', async function () {
    this.timeout(30000)
    const dir = await mkdtemp(join(tmpdir(), 'cf-fusion-'))
    try {
      const basePath = join(dir, 'base.safetensors')
      await writeFile(basePath, encodeSafetensors(base))
      const files: string[] = []
      for (const [i, d] of [...deltas].reverse().entries()) {
        files.push(join(dir, `delta-${i}.cfdl`))
        await writeFile(files[i], d.payload)
      }
      const child = fileURLToPath(new URL('./fixtures/fusion-child.js', import.meta.url))
      const { stdout } = await promisify(execFile)(process.execPath, [child, basePath, ...files])
      assert.equal(JSON.parse(stdout).hash, fusedHash)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('does not modify the base', () => {
    const copy = cloneTensors(base)
    fuseRound(base, deltas)
    assert.ok(bytesOf(copy).equals(bytesOf(base)))
  })

  it('the mean of identical (quantized) deltas equals that delta', () => {
    const delta = randomTensors(9, 3e-3)
    // Same values, different example counts: distinct payloads and ids, same decoded tensors.
    const copies = [1, 2, 3, 4, 5].map((e) => makeDelta(delta, e))
    assert.equal(new Set(copies.map((c) => c.id)).size, 5)
    const recon = decodeDelta(copies[0].payload).tensors
    const out = fuseRound(base, copies)
    for (const [name, b] of base) {
      const want = new Float32Array(b.data.length)
      for (let i = 0; i < want.length; i++) want[i] = b.data[i] + recon.get(name)!.data[i]
      assert.deepEqual(out.get(name)!.data, want)
    }
    assert.ok(bytesOf(out).equals(bytesOf(fuseRound(base, [copies[2]]))))
  })

  it('rejects mismatched layouts, naming the delta', () => {
    const wrongShape = makeDelta(randomTensors(3, 1e-2, { ...SHAPES, 'pooler.dense.weight': [32, 128] }), 10)
    const e = rejected(() => fuseRound(base, [...deltas, wrongShape]), 'layout-mismatch')
    assert.equal(e.deltaId, wrongShape.id)
    const { 'pooler.dense.weight': _, ...fewer } = SHAPES
    rejected(() => fuseRound(base, [makeDelta(randomTensors(3, 1e-2, fewer), 10)]), 'layout-mismatch')
    rejected(() => fuseRound(base, [makeDelta(randomTensors(3, 1e-2, { ...SHAPES, 'classifier.weight': [2, 64] }), 10)]), 'layout-mismatch')
  })

  it('rejects duplicates, forged ids, other bases and rounds, and announced/payload mismatches', () => {
    rejected(() => fuseRound(base, [deltas[0], deltas[1], deltas[0]]), 'duplicate')
    rejected(() => fuseRound(base, [{ ...deltas[0], id: deltas[1].id }, deltas[2]]), 'id-mismatch')
    rejected(() => fuseRound(base, [makeDelta(randomTensors(3, 1e-2), 1, undefined, { baseHash: 'cd'.repeat(32) })]), 'wrong-base')
    rejected(() => fuseRound(base, [...deltas, makeDelta(randomTensors(3, 1e-2), 1, undefined, { round: 8 })]), 'wrong-round')
    rejected(() => fuseRound(base, deltas, { round: 6 }), 'wrong-round')
    rejected(() => fuseRound(base, [{ ...deltas[0], examples: 1 }]), 'examples-mismatch')
    assert.throws(() => fuseRound(base, []), RangeError)
    assert.throws(() => fuseRound(base, deltas, { rule: 'no-such-rule' }), RangeError)
  })

  it('names the delta whose values are corrupt', () => {
    const good = makeDelta(randomTensors(4, 1e-2), 3, { codec: 'q8-block', blockSize: 256 })
    // Set one int8 to -128 (never written by the encoder) and fix the checksum: framing is valid.
    const p = new Uint8Array(good.payload)
    p[p.length - 9] = 0x80
    p.set(createHash('sha256').update(p.subarray(0, p.length - 8)).digest().subarray(0, 8), p.length - 8)
    const bad = { id: createHash('sha256').update(p).digest('hex'), payload: p, examples: 3 }
    const e = rejected(() => fuseRound(base, [...deltas, bad]), 'non-canonical')
    assert.equal(e.deltaId, bad.id)
  })
})
