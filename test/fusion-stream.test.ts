import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { CODEC_IDS, decodeDelta, encodeDelta, FileBytes, openDelta, payloadDigests, type CodecSettings } from '../src/codec/index.js'
import { fuseRound, hashTensors, type DeltaInput, type FuseOptions } from '../src/fusion/index.js'
import { Rng } from '../src/model/prng.js'
import { encodeSafetensors } from '../src/model/safetensors.js'
import type { TensorMap } from '../src/model/tensors.js'
import { PayloadError } from '../src/util/errors.js'
import { q8Kernel, useQ8Kernel } from '../src/codec/wasm-q8.js'
import { mulberry32 } from '../src/data/rng.js'
import { deltaFileDir, rejected, resealed, seededTensors } from './helpers/payloads.js'

/**
 * The streaming fusion (pieces of `chunk` coordinates, fused decode-and-add, sections read from
 * files) against a plain reference: decode every delta whole, then per coordinate the float64
 * sum of the float32 values in id order and the rule's finish rounded once.
 */

// Sizes that are not multiples of the pieces or blocks used below.
const SHAPES: Record<string, number[]> = {
  'a.weight': [37, 29],
  'b.bias': [1],
  'c.weight': [203, 11],
  'd.empty': [0, 4],
}

const tensors = (seed: number, scale: number): TensorMap => seededTensors(SHAPES, seed, scale)

const base = tensors(1, 0.1)
const baseHash = hashTensors(base)

function settingsFor(codec: string, k: number): CodecSettings {
  if (codec === 'f32') return { codec }
  if (codec === 'topk-f32') return { codec, densityPpm: 150_000 }
  if (codec.startsWith('topk-')) return { codec, blockSize: [7, 100, 256][k % 3], densityPpm: 150_000 }
  return { codec, blockSize: [7, 100, 256, 33][k % 4] }
}

function deltasFor(codec: string, count: number, seed = 100): DeltaInput[] {
  return Array.from({ length: count }, (_, k) => {
    const examples = 10 + 7 * k
    const e = encodeDelta(tensors(seed + k, 1e-2 * (k + 1)), settingsFor(codec, k), { round: 3, baseHash, examples })
    return { id: e.deltaId, payload: e.payload, examples }
  })
}

/** The plain reference of every rule below (DARE's mask as its contract states it). */
function reference(rule: string, deltas: DeltaInput[], params: Record<string, number> = {}, clip?: number): TensorMap {
  const sorted = [...deltas].sort((a, b) => (a.id < b.id ? -1 : 1))
  let decoded = sorted.map((d) => decodeDelta(d.payload, { layout: base }).tensors)
  if (clip !== undefined) {
    decoded = decoded.map((t) => {
      let s = 0
      for (const name of [...t.keys()].sort()) for (const v of t.get(name)!.data) s += v * v
      const norm = Math.sqrt(s)
      if (norm <= clip) return t
      const f = clip / norm
      return new Map([...t].map(([k, v]) => [k, { shape: v.shape, data: v.data.map((x) => x * f) }]))
    })
  }
  const n = decoded.length
  const total = sorted.reduce((a, d) => a + d.examples, 0)
  const seed = createHash('sha256').update(`coldfusion-fuse\n${rule}\n3\n${baseHash}\n${sorted.map((d) => d.id).join('\n')}`).digest('hex')
  const out: TensorMap = new Map()
  for (const [name, b] of base) {
    const data = new Float32Array(b.data.length)
    const masks = sorted.map((d) => (rule === 'dare' ? Rng.fromSeed('coldfusion-dare-v1', seed, d.id, name) : undefined))
    for (let i = 0; i < data.length; i++) {
      const vals = decoded.map((t) => t.get(name)!.data[i])
      let sum = 0
      if (rule === 'mean') {
        for (const v of vals) sum += v
        data[i] = b.data[i] + sum / n
      } else if (rule === 'weighted-mean') {
        vals.forEach((v, k) => (sum += (sorted[k].examples / total) * v))
        data[i] = b.data[i] + sum
      } else if (rule === 'task-arithmetic') {
        for (const v of vals) sum += v
        data[i] = b.data[i] + params.scale * sum
      } else if (rule === 'dare') {
        const threshold = Math.floor(params.drop * 4294967296)
        vals.forEach((v, k) => {
          if (masks[k]!.nextU32() >= threshold) sum += v * (1 / (1 - params.drop))
        })
        data[i] = b.data[i] + (params.scale * sum) / n
      } else {
        const col = Float64Array.from(vals).sort()
        const t = rule === 'median' ? 0 : Math.floor(params.trim * n)
        if (rule === 'median') data[i] = b.data[i] + (n % 2 === 1 ? col[n >> 1] : (col[(n >> 1) - 1] + col[n >> 1]) / 2)
        else {
          for (let j = t; j < n - t; j++) sum += col[j]
          data[i] = b.data[i] + sum / (n - 2 * t)
        }
      }
    }
    out.set(name, { shape: b.shape, data })
  }
  return out
}

const bytesOf = (t: TensorMap) => Buffer.from(encodeSafetensors(t))

const RULES: [string, Record<string, number>][] = [
  ['mean', {}],
  ['weighted-mean', {}],
  ['task-arithmetic', { scale: 0.7 }],
  ['dare', { drop: 0.3, scale: 1.5 }],
  ['median', {}],
  ['trimmed-mean', { trim: 0.25 }],
]

describe('streaming fusion', () => {
  const { path, toFiles } = deltaFileDir('cfd-fusion-stream-')

  for (const codec of CODEC_IDS) {
    it(`${codec}: every rule equals the reference, bit for bit, for any piece size, order and source`, function () {
      this.timeout(60_000)
      const deltas = deltasFor(codec, 5)
      const files = toFiles(deltas)
      const r = mulberry32(codec.length)
      for (const [rule, params] of RULES) {
        const want = bytesOf(reference(rule, deltas, params))
        const opts: FuseOptions = { rule, params, baseHash }
        for (const chunk of [undefined, 1, 3, 64, 1000]) {
          assert.ok(bytesOf(fuseRound(base, deltas, { ...opts, chunk })).equals(want), `${rule}, chunk ${chunk}`)
        }
        const shuffled = [...deltas].sort(() => r() - 0.5)
        assert.ok(bytesOf(fuseRound(base, shuffled, { ...opts, verified: true, chunk: 97 })).equals(want), `${rule}, shuffled, verified`)
        assert.ok(bytesOf(fuseRound(base, [...files].reverse(), { ...opts, chunk: 250 })).equals(want), `${rule}, from files`)
        const mixed = deltas.map((d, k) => (k % 2 === 0 ? files[k] : d))
        assert.ok(bytesOf(fuseRound(base, mixed, opts)).equals(want), `${rule}, files and memory`)
      }
    })
  }

  it('q8: the WebAssembly SIMD kernel and the JS loop both equal the reference', () => {
    assert.ok(q8Kernel(), 'WebAssembly SIMD is available in Node 22')
    const deltas = deltasFor('q8-block', 6, 900)
    try {
      for (const simd of [true, false]) {
        useQ8Kernel(simd)
        for (const [rule, params] of RULES.slice(0, 3)) {
          const want = bytesOf(reference(rule, deltas, params))
          for (const chunk of [undefined, 17, 4096]) {
            assert.ok(bytesOf(fuseRound(base, deltas, { rule, params, baseHash, chunk })).equals(want), `${rule}, simd ${simd}, chunk ${chunk}`)
          }
        }
      }
    } finally {
      useQ8Kernel(true)
    }
  })

  it('a norm bound (clip) streams the same values as the reference', () => {
    const deltas = deltasFor('q8-block', 4)
    const clip = 0.4
    const want = bytesOf(reference('mean', deltas, {}, clip))
    for (const chunk of [undefined, 5]) {
      assert.ok(bytesOf(fuseRound(base, deltas, { baseHash, normBound: { mode: 'clip', maxNorm: clip }, chunk })).equals(want))
    }
    assert.ok(bytesOf(fuseRound(base, toFiles(deltas), { baseHash, normBound: { mode: 'clip', maxNorm: clip } })).equals(want))
  })

  it('streams accept exactly the sections decodeInto accepts, with the same values', function () {
    this.timeout(60_000)
    const r = mulberry32(77)
    for (const codec of CODEC_IDS) {
      const [d] = deltasFor(codec, 1, 500)
      const idLen = d.payload[6]
      const bodyPos = 11 + idLen + new DataView(d.payload.buffer, d.payload.byteOffset).getUint32(7 + idLen, true)
      const bodyLen = d.payload.length - 8 - bodyPos
      for (let trial = 0; trial < 60; trial++) {
        const p = new Uint8Array(d.payload)
        // Flip bits in the body only (a header error is caught before any value is read).
        for (let f = 0; f < 1 + (trial % 3); f++) p[bodyPos + Math.floor(r() * bodyLen)] ^= 1 << Math.floor(r() * 8)
        let reader
        try {
          reader = openDelta(resealed(p), { layout: base })
        } catch {
          continue
        }
        for (const t of reader.tensors) {
          let whole: Float32Array | PayloadError
          try {
            whole = reader.read(t.name)
          } catch (err) {
            assert.ok(err instanceof PayloadError)
            whole = err
          }
          const chunk = 1 + Math.floor(r() * 300)
          const got = new Float32Array(t.numel)
          let streamed: Float32Array | PayloadError = got
          try {
            const s = reader.stream(t.name)
            for (let at = 0; at < t.numel; at += chunk) {
              const c = Math.min(chunk, t.numel - at)
              const piece = new Float32Array(c)
              s.decode(piece, c)
              got.set(piece, at)
            }
          } catch (err) {
            assert.ok(err instanceof PayloadError, `${codec}: ${(err as Error).stack}`)
            streamed = err
          }
          assert.equal(streamed instanceof PayloadError, whole instanceof PayloadError, `${codec} ${t.name}: stream and decodeInto disagree (${String(whole)} / ${String(streamed)})`)
          if (!(whole instanceof PayloadError)) assert.deepEqual(got, whole)
        }
      }
    }
  })

  it('rejects bad values found while streaming, naming the delta', () => {
    for (const codec of ['q8-block', 'q4-block', 'q1-block', 'f32']) {
      const deltas = deltasFor(codec, 3)
      const p = new Uint8Array(deltas[1].payload)
      // The last value bytes: an int8 of -128, nibble -8, a sign bit in the unused tail, or a NaN.
      if (codec === 'f32') p.set([0, 0, 0xc0, 0x7f], p.length - 12)
      else p[p.length - 9] = codec === 'q1-block' ? 0xff : codec === 'q4-block' ? 0x88 : 0x80
      const bad = resealed(p)
      const id = payloadDigests(bad).id
      const inputs = [deltas[0], { id, payload: bad, examples: deltas[1].examples }, deltas[2]]
      const e = rejected(() => fuseRound(base, inputs, { baseHash }), codec === 'f32' ? 'non-finite' : 'non-canonical')
      assert.equal(e.deltaId, id, codec)
      rejected(() => fuseRound(base, toFiles(inputs), { baseHash }), codec === 'f32' ? 'non-finite' : 'non-canonical')
    }
  })

  it('file inputs: a damaged or missing file is rejected; the id and checksum are checked in one pass', () => {
    const deltas = deltasFor('q8-block', 3)
    const files = toFiles(deltas)
    const damaged = new Uint8Array(deltas[2].payload)
    damaged[damaged.length - 100] ^= 4
    writeFileSync(files[2].file, damaged)
    rejected(() => fuseRound(base, files, { baseHash, verified: true }), 'hash-mismatch')
    // Damaged and resealed: the checksum is fine, the id is not.
    writeFileSync(files[2].file, resealed(damaged))
    rejected(() => fuseRound(base, files, { baseHash }), 'hash-mismatch')
    // A damaged header is reported as damage, not as a malformed delta.
    const header = new Uint8Array(deltas[2].payload)
    header[20] ^= 0x55
    writeFileSync(files[2].file, header)
    rejected(() => fuseRound(base, files, { baseHash }), 'hash-mismatch')
    rejected(() => fuseRound(base, [files[0], { ...files[1], file: path('absent.cfd') }], { baseHash }), 'not-found')
    // In memory, without `verified`: a forged checksum is caught in the same pass as the id.
    const forged = new Uint8Array(deltas[0].payload)
    forged[forged.length - 1] ^= 1
    rejected(() => fuseRound(base, [{ id: payloadDigests(forged).id, payload: forged, examples: deltas[0].examples }], { baseHash }), 'checksum')
  })

  it('FileBytes hashes what it reads in order, and the rest when verified', () => {
    const [d] = deltasFor('q4-block', 1)
    const file = path('fb.cfd')
    writeFileSync(file, d.payload)
    assert.deepEqual(payloadDigests(d.payload), { id: d.id, checksumOk: true })
    for (const pattern of [[0, 50, 10, 400, 1000], [300, 0, 7], []]) {
      for (const hashAsRead of [true, false]) {
        const fb = FileBytes.open(file, { hashAsRead })
        for (const at of pattern) fb.read(at, Math.min(200, d.payload.length - at), 1)
        fb.verify(d.id)
        fb.close()
      }
    }
    const fb = FileBytes.open(file)
    assert.throws(() => fb.verify('00'.repeat(32)), (e: unknown) => e instanceof PayloadError && e.reason === 'hash-mismatch')
    fb.close()
  })
})
