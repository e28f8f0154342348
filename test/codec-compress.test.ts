import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  CODEC_IDS,
  codecIds,
  decodeDelta,
  encodeDelta,
  ErrorFeedback,
  getCodec,
  layoutDigest,
  openDelta,
  validateDelta,
  type CodecSettings,
  type DeltaMeta,
} from '../src/codec/index.js'
import { topKThreshold, TopKCursor } from '../src/codec/select.js'
import { VarintReader, varintSize, writeVarint } from '../src/codec/varint.js'
import { createSwarmDefinition } from '../src/config/genesis.js'
import { swarmId } from '../src/config/swarm.js'
import { fusionPorts, usesErrorFeedback } from '../src/daemon/ports.js'
import { fuseRound, hashTensors } from '../src/fusion/index.js'
import { builtinModelConfig } from '../src/model/config.js'
import { bodyTensorShapes } from '../src/model/init.js'
import { mulberry32 } from '../src/data/rng.js'
import type { TensorMap } from '../src/model/tensors.js'
import { PayloadError } from '../src/util/errors.js'
import { resealed } from './helpers/payloads.js'

const META: DeltaMeta = { round: 2, baseHash: 'cd'.repeat(32), examples: 50 }
const SHAPES = { 'embeddings.word': [40, 16], 'encoder.b': [7], 'encoder.w': [33, 17], empty: [0, 4], zeros: [9] }

function gaussian(r: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r())
}

function randomDelta(seed: number, shapes: Record<string, number[]> = SHAPES, scale = 1e-3): TensorMap {
  const r = mulberry32(seed)
  const t: TensorMap = new Map()
  for (const [name, shape] of Object.entries(shapes)) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1))
    if (name !== 'zeros') for (let i = 0; i < data.length; i++) data[i] = gaussian(r) * scale
    t.set(name, { shape, data })
  }
  return t
}

function rejects(fn: () => unknown, reason?: string): PayloadError {
  try {
    fn()
  } catch (err) {
    assert.ok(err instanceof PayloadError, `expected PayloadError, got ${(err as Error)?.stack ?? err}`)
    if (reason) assert.equal(err.reason, reason, err.message)
    return err
  }
  assert.fail('expected a PayloadError')
}

const NEW: CodecSettings[] = [
  { codec: 'q4-block', blockSize: 16 },
  { codec: 'q1-block', blockSize: 16 },
  { codec: 'topk-f32', densityPpm: 50_000 },
  { codec: 'topk-q8', blockSize: 8, densityPpm: 50_000 },
  { codec: 'topk-q4', blockSize: 8, densityPpm: 100_000 },
  { codec: 'topk-q1', blockSize: 8, densityPpm: 300_000 },
]

describe('codecs: 4-bit, 1-bit, top-k', () => {
  it('registers every codec a swarm may name', () => {
    for (const id of CODEC_IDS) assert.ok(getCodec(id), id)
    assert.deepEqual([...CODEC_IDS].sort(), codecIds())
  })

  for (const s of NEW) {
    it(`${s.codec}: decodes to its reconstruction bit for bit, deterministically, in container format 2`, () => {
      const d = randomDelta(3)
      const a = encodeDelta(d, s, META)
      const b = encodeDelta(randomDelta(3), s, META)
      assert.equal(a.deltaId, b.deltaId)
      const out = decodeDelta(a.payload, { layout: d })
      for (const [name, t] of out.tensors) assert.deepEqual(t.data, a.reconstruction.get(name)!.data, name)
      assert.equal(new DataView(a.payload.buffer).getUint16(4, true), 2)
      assert.ok(out.tensors.get('zeros')!.data.every((x) => x === 0))
      assert.equal(out.tensors.get('empty')!.data.length, 0)
    })
  }

  it('q4-block: |x - decoded| <= scale/2 + |x|*2^-23, levels in [-7, 7]', () => {
    const d = randomDelta(5, { a: [1000] })
    const B = 64
    const rec = encodeDelta(d, { codec: 'q4-block', blockSize: B }, META).reconstruction.get('a')!.data
    const x = d.get('a')!.data
    for (let lo = 0; lo < x.length; lo += B) {
      let max = 0
      for (let i = lo; i < Math.min(x.length, lo + B); i++) max = Math.max(max, Math.abs(x[i]))
      const scale = Math.fround(max / 7)
      for (let i = lo; i < Math.min(x.length, lo + B); i++) {
        assert.ok(Math.abs(x[i] - rec[i]) <= scale / 2 + Math.abs(x[i]) * 2 ** -23, `${i}`)
        assert.ok(Number.isInteger(Math.round(rec[i] / scale)) && Math.abs(Math.round(rec[i] / scale)) <= 7)
      }
    }
  })

  it('q1-block: each value becomes sign * mean |block|', () => {
    const d = randomDelta(6, { a: [100] })
    const rec = encodeDelta(d, { codec: 'q1-block', blockSize: 32 }, META).reconstruction.get('a')!.data
    const x = d.get('a')!.data
    for (let lo = 0; lo < 100; lo += 32) {
      const hi = Math.min(100, lo + 32)
      let sum = 0
      for (let i = lo; i < hi; i++) sum += Math.abs(x[i])
      const scale = Math.fround(sum / (hi - lo))
      for (let i = lo; i < hi; i++) assert.equal(rec[i], x[i] < 0 ? -scale : scale)
    }
  })

  it('top-k: keeps exactly the k largest magnitudes over all tensors, the rest is 0', () => {
    const d = randomDelta(7)
    const total = [...d.values()].reduce((a, t) => a + t.data.length, 0)
    const enc = encodeDelta(d, { codec: 'topk-f32', densityPpm: 100_000 }, META)
    const k = Math.ceil((total * 100_000) / 1e6)
    const kept: number[] = []
    const dropped: number[] = []
    for (const [name, t] of d) {
      const r = enc.reconstruction.get(name)!.data
      t.data.forEach((x, i) => (r[i] !== 0 ? (assert.equal(r[i], x), kept.push(Math.abs(x))) : x !== 0 && dropped.push(Math.abs(x))))
    }
    assert.equal(kept.length, k)
    assert.ok(Math.min(...kept) >= Math.max(...dropped))
  })

  it('top-k selection: exact threshold with ties broken by position, zeros never kept', () => {
    const r = mulberry32(11)
    for (let trial = 0; trial < 50; trial++) {
      const arrays = [0, 1, 2].map(() => Float32Array.from({ length: Math.floor(r() * 40) }, () => (r() < 0.2 ? 0 : Math.round((r() - 0.5) * 8) / 4)))
      const all = arrays.flatMap((a, j) => [...a].map((x, i) => ({ j, i, m: Math.abs(x) })))
      const k = Math.floor(r() * (all.length + 3))
      const want = all.filter((e) => e.m > 0).sort((a, b) => b.m - a.m || a.j - b.j || a.i - b.i).slice(0, k)
      const cursor = new TopKCursor(topKThreshold(arrays, k))
      const got = arrays.flatMap((a, j) => [...cursor.indices(a)].map((i) => `${j}:${i}`))
      assert.deepEqual(got.sort(), want.map((e) => `${e.j}:${e.i}`).sort())
    }
    assert.throws(() => topKThreshold([new Float32Array([1, NaN])], 1), /non-finite/)
  })

  it('topk-q8 at 100% density quantizes like q8-block', () => {
    const d = randomDelta(8, { a: [300], b: [77] })
    const sparse = encodeDelta(d, { codec: 'topk-q8', blockSize: 32, densityPpm: 1_000_000 }, META).reconstruction
    const dense = encodeDelta(d, { codec: 'q8-block', blockSize: 32 }, META).reconstruction
    for (const name of ['a', 'b']) assert.deepEqual(sparse.get(name)!.data, dense.get(name)!.data)
  })

  it('top-k at about 100x: 2% of a 200k-parameter delta with 1-bit values is over 100 times smaller than float32', () => {
    const d = randomDelta(9, { w: [2048, 64], a: [64, 64], b: [128, 64], c: [64] })
    const f32 = encodeDelta(d, { codec: 'f32' }, META).payload.length
    const q1 = encodeDelta(d, { codec: 'topk-q1', blockSize: 256, densityPpm: 20_000 }, META).payload.length
    assert.ok(f32 / q1 > 100, `${f32 / q1}`)
  })

  it('varints: shortest form only, bounded', () => {
    for (const x of [0, 1, 127, 128, 300, 2 ** 21, 2 ** 31 - 1]) {
      const b = new Uint8Array(varintSize(x))
      assert.equal(writeVarint(b, 0, x), b.length)
      const r = new VarintReader(b, 0, b.length)
      assert.equal(r.next(), x)
      assert.equal(r.pos, b.length)
    }
    rejects(() => new VarintReader(new Uint8Array([0x81, 0x00]), 0, 2).next(), 'non-canonical')
    rejects(() => new VarintReader(new Uint8Array([0x80]), 0, 1).next(), 'truncated')
    rejects(() => new VarintReader(new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x7f]), 0, 5).next(), 'malformed')
    rejects(() => new VarintReader(new Uint8Array([0x80, 0x80, 0x80, 0x80, 0x80, 0x01]), 0, 6).next(), 'malformed')
  })

  it('sparse sections: rejects bad counts, indices, lengths and non-canonical values', () => {
    const layout: TensorMap = new Map([['x', { shape: [10], data: new Float32Array(10) }]])
    const digest = layoutDigest(layout)
    const payload = (codec: string, params: Record<string, number>, section: number[]) => {
      const id = new TextEncoder().encode(codec)
      const header = new TextEncoder().encode(JSON.stringify({ layout: digest, meta: META, params, sizes: [section.length] }))
      const out = new Uint8Array(11 + id.length + header.length + section.length + 8)
      const dv = new DataView(out.buffer)
      out.set(new TextEncoder().encode('CFDL'), 0)
      dv.setUint16(4, 2, true)
      out[6] = id.length
      out.set(id, 7)
      dv.setUint32(7 + id.length, header.length, true)
      out.set(header, 11 + id.length)
      out.set(section, 11 + id.length + header.length)
      return resealed(out)
    }
    const f = (x: number) => [...new Uint8Array(new Float32Array([x]).buffer)]
    const ok = payload('topk-f32', { densityPpm: 100_000 }, [2, 1, 3, ...f(0.5), ...f(-2)])
    assert.deepEqual([...decodeDelta(ok, { layout }).tensors.get('x')!.data], [0, 0.5, 0, 0, 0, -2, 0, 0, 0, 0])
    rejects(() => decodeDelta(payload('topk-f32', { densityPpm: 100_000 }, [11, ...Array(11).fill(0)]), { layout }), 'malformed') // m > n
    rejects(() => decodeDelta(payload('topk-f32', { densityPpm: 100_000 }, [1, 10, ...f(1)]), { layout }), 'malformed') // index 10
    rejects(() => decodeDelta(payload('topk-f32', { densityPpm: 100_000 }, [1, 0, ...f(1), 0]), { layout }), 'malformed') // trailing byte
    rejects(() => decodeDelta(payload('topk-f32', { densityPpm: 100_000 }, [1, 0, ...f(NaN)]), { layout }), 'non-finite')
    rejects(() => decodeDelta(payload('topk-f32', { densityPpm: 100_000 }, [1, 0x80, 0x00, ...f(1)]), { layout }), 'non-canonical')
    rejects(() => decodeDelta(payload('topk-f32', { densityPpm: 0 }, [0]), { layout }), 'malformed')
    rejects(() => decodeDelta(payload('topk-f32', { densityPpm: 1, blockSize: 8 }, [0]), { layout }), 'malformed')
    // q4: -8 is never written; q1: sign bits in a zero-scale block, or padding bits, are not canonical.
    rejects(() => decodeDelta(payload('topk-q4', { blockSize: 8, densityPpm: 1 }, [1, 0, ...f(1), 0x08]), { layout }), 'non-canonical')
    rejects(() => decodeDelta(payload('topk-q4', { blockSize: 8, densityPpm: 1 }, [1, 0, ...f(1), 0x11]), { layout }), 'non-canonical')
    rejects(() => decodeDelta(payload('topk-q1', { blockSize: 8, densityPpm: 1 }, [1, 0, ...f(0), 0x01]), { layout }), 'non-canonical')
    rejects(() => decodeDelta(payload('topk-q1', { blockSize: 8, densityPpm: 1 }, [1, 0, ...f(1), 0x02]), { layout }), 'non-canonical')
    assert.deepEqual([...decodeDelta(payload('topk-q1', { blockSize: 8, densityPpm: 1 }, [1, 4, ...f(0.25), 0x01]), { layout }).tensors.get('x')!.data], [0, 0, 0, 0, -0.25, 0, 0, 0, 0, 0])
  })

  it('container format 2: names the layout by digest, needs the layout to decode, stays small', () => {
    const d = randomDelta(12)
    const p = encodeDelta(d, { codec: 'topk-q1', blockSize: 8, densityPpm: 10_000 }, META).payload
    rejects(() => decodeDelta(p), 'layout-required')
    rejects(() => openDelta(p, { layout: randomDelta(1, { ...SHAPES, 'encoder.w': [17, 33] }) }), 'layout-mismatch')
    rejects(() => openDelta(p, { layout: d, round: 3 }), 'wrong-round')
    assert.equal(openDelta(p, { layout: d }).meta.examples, 50)
    // A format-1 payload lists every tensor; format 2 only the digest and the section sizes:
    // on the built-in model's 39 tensors, 3 KB against a few hundred bytes.
    const body = randomDelta(14, Object.fromEntries(bodyTensorShapes(builtinModelConfig())))
    const v1 = encodeDelta(body, { codec: 'f32' }, META).payload
    const v2 = encodeDelta(body, { codec: 'topk-q1', blockSize: 256, densityPpm: 20_000 }, META).payload
    assert.equal(new DataView(v1.buffer).getUint16(4, true), 1)
    const hdr = (x: Uint8Array) => new DataView(x.buffer, x.byteOffset).getUint32(7 + x[6], true)
    assert.ok(hdr(v1) > 3000 && hdr(v2) < 500, `${hdr(v2)} vs ${hdr(v1)}`)
  })

  it('fuzz: flips and truncations of format-2 payloads only ever raise PayloadError', function () {
    this.timeout(60000)
    const r = mulberry32(17)
    const layout = randomDelta(13, { a: [5, 3], b: [20] })
    let resealedAccepted = 0
    for (const s of NEW) {
      const base = encodeDelta(layout, s, META).payload
      const attempt = (p: Uint8Array) => {
        try {
          validateDelta(p, { layout })
          return 1
        } catch (err) {
          if (!(err instanceof PayloadError)) throw new Error(`${s.codec}: non-PayloadError on ${Buffer.from(p).toString('hex')}: ${(err as Error).stack}`)
          return 0
        }
      }
      let accepted = 0
      for (let n = 0; n < base.length; n++) accepted += attempt(base.subarray(0, n))
      for (let i = 0; i < base.length; i++) {
        const p = new Uint8Array(base)
        p[i] ^= 1 << Math.floor(r() * 8)
        accepted += attempt(p)
      }
      assert.equal(accepted, 0, `${s.codec}: a flip survived the checksum`)
      for (let k = 0; k < 1500; k++) {
        const p = new Uint8Array(base)
        p[Math.floor(r() * (p.length - 8))] = Math.floor(r() * 256)
        resealedAccepted += attempt(resealed(p))
      }
    }
    assert.ok(resealedAccepted > 0)
  })

  it('fusion accepts the new codecs: mean of decoded deltas, in any order', () => {
    const base = randomDelta(20, { a: [50], b: [6, 6] }, 1)
    const baseHash = hashTensors(base)
    const deltas = [21, 22, 23].map((seed, i) => {
      const e = encodeDelta(randomDelta(seed, { a: [50], b: [6, 6] }), NEW[i + 2], { ...META, baseHash })
      return { id: e.deltaId, payload: e.payload, examples: META.examples, rec: e.reconstruction }
    })
    const fused = fuseRound(base, deltas)
    const again = fuseRound(base, [...deltas].reverse())
    assert.equal(hashTensors(fused), hashTensors(again))
    const sorted = [...deltas].sort((x, y) => (x.id < y.id ? -1 : 1))
    for (const [name, t] of fused) {
      t.data.forEach((v, i) => {
        let acc = 0
        for (const d of sorted) acc += d.rec.get(name)!.data[i]
        assert.equal(v, Math.fround(base.get(name)!.data[i] + acc / 3))
      })
    }
  })
})

describe('error feedback', () => {
  it('what compression dropped is sent later: sum of reconstructions + residual == sum of deltas', async () => {
    const fb = ErrorFeedback.inMemory()
    const shapes = { w: [64, 16], b: [16] }
    const total = randomDelta(0, shapes, 0)
    const sentSum = randomDelta(0, shapes, 0)
    for (let round = 0; round < 5; round++) {
      const d = randomDelta(30 + round, shapes)
      for (const [n, t] of d) t.data.forEach((x, i) => (total.get(n)!.data[i] += x))
      const sent = fb.apply(d)
      const enc = encodeDelta(sent, { codec: 'topk-q1', blockSize: 16, densityPpm: 50_000 }, META)
      fb.update(sent, enc.reconstruction)
      await fb.commit()
      for (const [n, t] of enc.reconstruction) t.data.forEach((x, i) => (sentSum.get(n)!.data[i] += x))
    }
    for (const [n, t] of total) {
      t.data.forEach((x, i) => assert.ok(Math.abs(x - (sentSum.get(n)!.data[i] + fb.residual!.get(n)!.data[i])) < 1e-8, `${n}[${i}]`))
    }
  })

  it('a staged residual counts only once committed; discard forgets it', async () => {
    const fb = ErrorFeedback.inMemory()
    const d = randomDelta(40, { a: [10] })
    const zero = randomDelta(0, { a: [10] }, 0)
    fb.update(d, zero)
    assert.deepEqual(fb.apply(zero).get('a')!.data, zero.get('a')!.data)
    fb.discard()
    await fb.commit()
    assert.equal(fb.residual, undefined)
    fb.update(d, zero)
    await fb.commit()
    assert.deepEqual(fb.apply(zero).get('a')!.data, d.get('a')!.data)
  })

  it('persists the committed residual atomically and drops a file of another layout', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cfd-feedback-'))
    try {
      const file = join(dir, 'feedback.safetensors')
      const layout = randomDelta(41, { a: [10], b: [2, 3] })
      const fb = await ErrorFeedback.load(file, layout)
      assert.equal(fb.residual, undefined)
      fb.update(layout, randomDelta(0, { a: [10], b: [2, 3] }, 0))
      await fb.commit()
      const again = await ErrorFeedback.load(file, layout)
      assert.deepEqual(again.residual, fb.residual)
      const reasons: string[] = []
      const other = await ErrorFeedback.load(file, randomDelta(41, { a: [11], b: [2, 3] }), (why) => reasons.push(why))
      assert.equal(other.residual, undefined)
      assert.match(reasons[0], /tensors are not the model's|shape/)
      await writeFile(file, 'garbage')
      await ErrorFeedback.load(file, layout, (why) => reasons.push(why))
      assert.equal(reasons.length, 2)
      assert.ok((await readFile(file)).length > 0)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('the daemon ports send delta + residual, and keep the new residual only for a fused delta', async () => {
    const { def } = createSwarmDefinition({ codec: 'topk-q1', seed: 'ef' })
    assert.equal(def.compression.densityPpm, 20_000)
    assert.ok(usesErrorFeedback(def))
    const layout = randomDelta(50, { a: [200] })
    const fb = ErrorFeedback.inMemory()
    const ports = fusionPorts(def, layout, fb)
    const meta = { round: 1, baseHash: 'ab'.repeat(32), examples: 3 }
    const p1 = ports.encodeDelta(randomDelta(51, { a: [200] }), meta)
    const id1 = createHash('sha256').update(p1).digest('hex')
    await ports.settleDelta('ff'.repeat(32), true) // not ours: no effect
    assert.equal(fb.residual, undefined)
    await ports.settleDelta(id1, true)
    assert.ok(fb.residual!.get('a')!.data.some((x) => x !== 0))
    const before = fb.residual
    const p2 = ports.encodeDelta(randomDelta(52, { a: [200] }), { ...meta, round: 2 })
    await ports.settleDelta(createHash('sha256').update(p2).digest('hex'), false)
    assert.equal(fb.residual, before)
  })

  it('swarm definitions: new codecs are additive, the default swarm is unchanged', () => {
    const { def } = createSwarmDefinition({ seed: 'x' })
    assert.deepEqual(def.compression, { codec: 'q8-block', blockSize: 256 })
    assert.equal(usesErrorFeedback(def), false)
    const sparse = createSwarmDefinition({ seed: 'x', codec: 'topk-q4', densityPpm: 5000, errorFeedback: false }).def
    assert.deepEqual(sparse.compression, { codec: 'topk-q4', blockSize: 256, densityPpm: 5000, errorFeedback: false })
    assert.equal(usesErrorFeedback(sparse), false)
    assert.notEqual(swarmId(def), swarmId(sparse))
  })
})
