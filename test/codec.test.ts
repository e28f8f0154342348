import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import {
  addInto,
  decodeDelta,
  decodeDeltaInto,
  encodeDelta,
  openDelta,
  residual,
  codecIds,
  getCodec,
  validateDelta,
  type DeltaMeta,
} from '../src/codec/index.js'
import type { TensorMap } from '../src/model/tensors.js'
import { PayloadError } from '../src/util/errors.js'
import { mulberry32 } from '../src/data/rng.js'

// A seeded PRNG, so every run (and machine) sees the same cases.
const rng = mulberry32

function gaussian(r: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r())
}

function randomDelta(seed: number, shapes: Record<string, number[]>, scale = 1e-3): TensorMap {
  const r = rng(seed)
  const t: TensorMap = new Map()
  for (const [name, shape] of Object.entries(shapes)) {
    const n = shape.reduce((a, b) => a * b, 1)
    const data = new Float32Array(n)
    for (let i = 0; i < n; i++) data[i] = gaussian(r) * scale
    t.set(name, { shape, data })
  }
  return t
}

const META: DeltaMeta = { round: 3, baseHash: 'ab'.repeat(32), examples: 120 }
const SHAPES = { 'encoder.b': [7], 'encoder.w': [33, 17], 'embeddings.word': [50, 16], 'empty': [0, 4] }

function reseal(p: Uint8Array): Uint8Array {
  const out = new Uint8Array(p)
  const end = out.length - 8
  out.set(createHash('sha256').update(out.subarray(0, end)).digest().subarray(0, 8), end)
  return out
}

/** Assemble a container by hand, for payloads the encoder would never write. */
function build(opts: { codec?: string; header: string | object; body: Uint8Array; version?: number; magic?: string }): Uint8Array {
  const id = new TextEncoder().encode(opts.codec ?? 'q8-block')
  const header = new TextEncoder().encode(typeof opts.header === 'string' ? opts.header : JSON.stringify(opts.header))
  const out = new Uint8Array(4 + 2 + 1 + id.length + 4 + header.length + opts.body.length + 8)
  const dv = new DataView(out.buffer)
  out.set(new TextEncoder().encode(opts.magic ?? 'CFDL'), 0)
  dv.setUint16(4, opts.version ?? 1, true)
  out[6] = id.length
  out.set(id, 7)
  dv.setUint32(7 + id.length, header.length, true)
  out.set(header, 11 + id.length)
  out.set(opts.body, 11 + id.length + header.length)
  return reseal(out)
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

describe('codec', () => {
  describe('f32', () => {
    it('round-trips bit for bit, and the reconstruction is the input', () => {
      const d = randomDelta(1, SHAPES)
      d.get('encoder.b')!.data[0] = -0
      const { payload, reconstruction } = encodeDelta(d, { codec: 'f32' }, META)
      const out = decodeDelta(payload, { layout: d })
      assert.deepEqual(out.meta, META)
      assert.equal(out.codec, 'f32')
      for (const [name, t] of d) {
        assert.deepEqual(out.tensors.get(name)!.shape, t.shape)
        assert.deepEqual(new Uint8Array(out.tensors.get(name)!.data.buffer), new Uint8Array(t.data.buffer))
        assert.deepEqual(reconstruction.get(name)!.data, t.data)
      }
    })

    it('refuses to encode non-finite values', () => {
      const d = randomDelta(2, { a: [4] })
      d.get('a')!.data[2] = NaN
      assert.throws(() => encodeDelta(d, { codec: 'f32' }, META), RangeError)
    })
  })

  describe('q8-block', () => {
    it('stays within |x - decoded| <= scale/2 + maxabs*2^-23 per element, and decode == reconstruction', () => {
      for (const [seed, B, scale] of [[3, 256, 1e-3], [4, 7, 1], [5, 64, 1e-30], [6, 1, 5], [7, 1000, 3e37]] as const) {
        const d = randomDelta(seed, SHAPES, scale)
        // A zero block, a lone spike and a block of tiny (flushed) values.
        const w = d.get('encoder.w')!.data
        w.fill(0, 0, Math.min(B, 40))
        w[100] = Math.min(scale * 50, 3e38)
        const { payload, reconstruction } = encodeDelta(d, { codec: 'q8-block', blockSize: B }, META)
        const out = decodeDelta(payload, { layout: d })
        for (const [name, t] of d) {
          const dec = out.tensors.get(name)!.data
          assert.deepEqual(new Uint8Array(dec.buffer), new Uint8Array(reconstruction.get(name)!.data.buffer), `${name}: reconstruction differs from decode`)
          for (let b = 0; b * B < t.data.length; b++) {
            let maxabs = 0
            for (let i = b * B; i < Math.min(t.data.length, (b + 1) * B); i++) maxabs = Math.max(maxabs, Math.abs(t.data[i]))
            let s = Math.fround(maxabs / 127)
            if (s < 2 ** -126) s = 0
            const bound = s === 0 ? maxabs : s / 2 + maxabs * 2 ** -23
            for (let i = b * B; i < Math.min(t.data.length, (b + 1) * B); i++) {
              assert.ok(Math.abs(t.data[i] - dec[i]) <= bound, `${name}[${i}]: |${t.data[i]} - ${dec[i]}| > ${bound}`)
            }
          }
        }
      }
    })

    it('handles values next to FLT_MAX and flushes subnormal-scale blocks to zero', () => {
      const max = 3.4028234663852886e38
      const d: TensorMap = new Map([['a', { shape: [6], data: new Float32Array([max, -max, 1, 0, 1e-44, -1e-40]) }]])
      const out = decodeDelta(encodeDelta(d, { codec: 'q8-block', blockSize: 3 }, META).payload)
      const v = out.tensors.get('a')!.data
      assert.ok(Number.isFinite(v[0]) && Math.abs(v[0] - max) / max < 1e-6)
      assert.equal(v[1], -v[0])
      assert.deepEqual([...v.subarray(3)], [0, 0, 0])
    })

    it('is deterministic and matches a golden payload hash', () => {
      const d = randomDelta(42, SHAPES)
      const a = encodeDelta(d, { codec: 'q8-block' }, META)
      const b = encodeDelta(randomDelta(42, SHAPES), { codec: 'q8-block' }, META)
      assert.deepEqual(a.payload, b.payload)
      assert.equal(a.deltaId, createHash('sha256').update(a.payload).digest('hex'))
      // Pinned: a change here changes every deltaId in the swarm (bump the format version instead).
      assert.equal(a.deltaId, GOLDEN_Q8)
    })

    it('compresses a 200k-parameter delta about 3.9x against dense float32', () => {
      const d = randomDelta(9, { 'a.weight': [256, 512], 'b.weight': [512, 128], 'c.bias': [3392] })
      const n = 256 * 512 + 512 * 128 + 3392
      assert.equal(n, 200000)
      const q8 = encodeDelta(d, { codec: 'q8-block' }, META).payload.length
      const f32 = encodeDelta(d, { codec: 'f32' }, META).payload.length
      assert.ok(q8 < n + 4 * Math.ceil(n / 256) + 400, `q8 ${q8}`)
      assert.ok(f32 >= 4 * n)
      console.log(`      200k params: q8-block ${q8} bytes, f32 ${f32} bytes (${(f32 / q8).toFixed(2)}x)`)
    })

    it('validate rejects exactly the sections decodeInto rejects, with the same error, without decoding', () => {
      const q8 = getCodec('q8-block')!
      const r = rng(77)
      const odd = [0, -0, NaN, Infinity, -1, 1e-40, 2 ** -126, 3e38, 1e-3, 0.5]
      let rejected = 0
      for (let c = 0; c < 3000; c++) {
        const B = [1, 2, 3, 7, 16][c % 5]
        const n = 1 + Math.floor(r() * 40)
        const nb = Math.ceil(n / B)
        const section = new Uint8Array(nb * 4 + n)
        const dv = new DataView(section.buffer)
        // Mostly valid blocks, with the odd bad scale, zero block, stray value or -128.
        for (let b = 0; b < nb; b++) dv.setFloat32(b * 4, r() < 0.9 ? 0.01 + r() : odd[Math.floor(r() * odd.length)], true)
        for (let i = 0; i < n; i++) section[nb * 4 + i] = r() < 0.03 ? 0x80 : Math.floor(r() * 255) - 127
        for (let b = 0; b < nb; b++) if (dv.getFloat32(b * 4, true) === 0 && r() < 0.7) section.fill(0, nb * 4 + b * B, nb * 4 + Math.min(n, (b + 1) * B))
        const outcome = (f: () => void) => {
          try {
            f()
            return 'ok'
          } catch (err) {
            assert.ok(err instanceof PayloadError, String(err))
            return `${err.reason}: ${err.message}`
          }
        }
        const decoded = outcome(() => q8.decodeInto(section, new Float32Array(n), { blockSize: B }))
        assert.equal(outcome(() => q8.validate!(section, n, { blockSize: B })), decoded, `case ${c}: B ${B}, n ${n}`)
        if (decoded !== 'ok') rejected++
      }
      assert.ok(rejected > 500 && rejected < 2500, `${rejected} of 3000 cases rejected: both outcomes must be exercised`)
    })

    it('rejects bad block sizes in settings', () => {
      for (const blockSize of [0, -1, 1.5, 2 ** 21]) assert.throws(() => encodeDelta(randomDelta(1, { a: [3] }), { codec: 'q8-block', blockSize }, META), RangeError)
    })
  })

  describe('container', () => {
    const d = randomDelta(11, SHAPES)
    it('every codec with a validate agrees with its decodeInto on encoded sections and damaged copies of them', () => {
      const r = rng(91)
      const d12 = randomDelta(12, { a: [40, 25], b: [333] })
      d12.get('a')!.data.fill(0, 0, 64)
      let checked = 0
      for (const id of codecIds()) {
        const codec = getCodec(id)!
        if (!codec.validate) continue
        const params = codec.paramsFromSettings({ codec: id, blockSize: 16, densityPpm: 100_000 })
        const names = [...d12.keys()].sort()
        const { sections } = codec.encode(d12, names, params)
        sections.forEach((section, k) => {
          const n = d12.get(names[k])!.data.length
          for (let c = 0; c < 200; c++) {
            const s2 = section.slice()
            // The first case as encoded; then byte flips, or a bad -128 / float in the front part.
            for (let f = 0; c > 0 && f < 1 + Math.floor(r() * 3); f++) s2[Math.floor(r() * s2.length)] = r() < 0.5 ? 0x80 : Math.floor(r() * 256)
            const outcome = (f: () => void) => {
              try {
                f()
                return 'ok'
              } catch (err) {
                assert.ok(err instanceof PayloadError, `${id}: ${String(err)}`)
                return `${err.reason}: ${err.message}`
              }
            }
            const decoded = outcome(() => codec.decodeInto(s2, new Float32Array(n), params))
            if (c === 0) assert.equal(decoded, 'ok', `${id}: its own encoding decodes`)
            assert.equal(outcome(() => codec.validate!(s2, n, params)), decoded, `${id}, ${names[k]}, case ${c}`)
            checked++
          }
        })
      }
      assert.ok(checked >= 5 * 2 * 200, `${checked} cases`)
    })

    const valid = encodeDelta(d, { codec: 'q8-block', blockSize: 16 }, META).payload

    it('decodes a payload at an unaligned offset inside a larger buffer (e.g. a pooled Buffer)', () => {
      const big = new Uint8Array(valid.length + 7)
      big.set(valid, 3)
      const out = decodeDelta(big.subarray(3, 3 + valid.length), { layout: d })
      assert.deepEqual(out.tensors, decodeDelta(valid).tensors)
      const f = encodeDelta(d, { codec: 'f32' }, META).payload
      const big2 = Buffer.alloc(f.length + 5)
      big2.set(f, 1)
      assert.deepEqual(decodeDelta(big2.subarray(1, 1 + f.length)).tensors, d)
    })

    it('visits tensors in canonical order, one at a time', () => {
      const seen: string[] = []
      const meta = decodeDeltaInto(valid, (name, values, shape) => {
        seen.push(name)
        assert.equal(values.length, shape.reduce((a, b) => a * b, 1))
      })
      assert.deepEqual(seen, [...d.keys()].sort())
      assert.deepEqual(meta, META)
    })

    it('rejects each kind of corruption with a clear reason', () => {
      const hdr = new DataView(valid.buffer).getUint32(7 + 8, true)
      const bodyAt = 11 + 8 + hdr
      const text = new TextDecoder().decode(valid.subarray(11 + 8, bodyAt))
      const body = valid.subarray(bodyAt, valid.length - 8)
      const flip = (i: number) => {
        const p = new Uint8Array(valid)
        p[i] ^= 0x40
        return p
      }
      rejects(() => decodeDelta(flip(0)), 'bad-magic')
      rejects(() => decodeDelta(build({ header: text, body, version: 3 })), 'unsupported-version')
      rejects(() => decodeDelta(build({ header: text, body, codec: 'q9-block' })), 'unsupported-codec')
      rejects(() => decodeDelta(valid.subarray(0, valid.length - 1)), 'truncated')
      rejects(() => decodeDelta(valid.subarray(0, 10)), 'truncated')
      rejects(() => decodeDelta(reseal(new Uint8Array([...valid, 0]))), 'trailing-bytes')
      rejects(() => decodeDelta(flip(valid.length - 20)), 'checksum')
      rejects(() => decodeDelta(flip(valid.length - 3)), 'checksum')
      rejects(() => decodeDelta(valid, { maxBytes: 100 }), 'too-large')
      rejects(() => decodeDelta(valid, { round: 4 }), 'wrong-round')
      rejects(() => decodeDelta(valid, { baseHash: 'cd'.repeat(32) }), 'wrong-base')
      const other = randomDelta(1, { ...SHAPES, 'encoder.w': [17, 33] })
      const e = rejects(() => decodeDelta(valid, { layout: other }), 'layout-mismatch')
      assert.match(e.message, /encoder\.w has shape \[33,17\], expected \[17,33\]/)
      rejects(() => decodeDelta(valid, { layout: randomDelta(1, { 'encoder.b': [7] }) }), 'layout-mismatch')
      rejects(() => decodeDelta(build({ header: text.replace('{"meta"', ' {"meta"'), body })), 'non-canonical')
      rejects(() => decodeDelta(build({ header: text.replace('"round":3', '"round":3.5'), body })), 'malformed')
      rejects(() => decodeDelta(build({ header: text.replace('"blockSize":16', '"blockSize":0'), body })), 'malformed')
      rejects(() => decodeDelta(build({ header: text.slice(0, -1), body })), 'malformed')
      rejects(() => decodeDelta(build({ header: '[]', body })), 'malformed')
    })

    it('rejects non-finite and non-canonical values, naming the tensor', () => {
      const one = (data: number[], scales: number[], codec = 'q8-block') => {
        const body = new Uint8Array(scales.length * 4 + data.length)
        const dv = new DataView(body.buffer)
        scales.forEach((s, i) => dv.setFloat32(i * 4, s, true))
        new Int8Array(body.buffer, scales.length * 4).set(data)
        const header = { meta: META, params: { blockSize: 2 }, tensors: [{ name: 'x', shape: [data.length], bytes: body.length }] }
        return build({ codec, header, body })
      }
      assert.deepEqual([...decodeDelta(one([1, -1, 2], [1, 0.5])).tensors.get('x')!.data], [1, -1, 1])
      for (const s of [NaN, Infinity, -1, -0, 1e-40, 3e38]) rejects(() => decodeDelta(one([1, 1], [s])), Number.isFinite(s) ? 'malformed' : 'non-finite')
      const e = rejects(() => decodeDelta(one([-128, 1], [1])), 'non-canonical')
      assert.match(e.message, /tensor x/)
      rejects(() => decodeDelta(one([0, 1], [0])), 'non-canonical')
      // openDelta checks framing only; validateDelta checks values too.
      assert.doesNotThrow(() => openDelta(one([-128, 1], [1])))
      rejects(() => validateDelta(one([-128, 1], [1])), 'non-canonical')
      const f = new Uint8Array(8)
      new DataView(f.buffer).setFloat32(0, 1, true)
      new DataView(f.buffer).setFloat32(4, Infinity, true)
      rejects(() => decodeDelta(build({ codec: 'f32', header: { meta: META, params: {}, tensors: [{ name: 'x', shape: [2], bytes: 8 }] }, body: f })), 'non-finite')
    })

    it('rejects sizes that overflow or exceed the value limit', () => {
      const header = (shape: number[], bytes: number) => ({ meta: META, params: { blockSize: 256 }, tensors: [{ name: 'x', shape, bytes }] })
      rejects(() => decodeDelta(build({ header: header([2 ** 30, 2 ** 30, 2 ** 30], 10), body: new Uint8Array(10) })), 'too-large')
      rejects(() => decodeDelta(build({ header: header([2 ** 27, 3], 10), body: new Uint8Array(10) })), 'too-large')
      rejects(() => decodeDelta(build({ header: header([1e300], 10), body: new Uint8Array(10) })), 'malformed')
      rejects(() => decodeDelta(build({ header: header([100], 2 ** 53), body: new Uint8Array(10) })), 'malformed')
      rejects(() => decodeDelta(build({ header: header([100], 10), body: new Uint8Array(10) })), 'malformed')
      rejects(() => decodeDelta(build({ header: header([100], 104), body: new Uint8Array(10) })), 'truncated')
    })

    it('fuzz: random bytes, truncations and byte flips only ever raise PayloadError', function () {
      this.timeout(60000)
      const r = rng(7)
      const small = encodeDelta(randomDelta(12, { a: [5, 3], b: [20] }), { codec: 'q8-block', blockSize: 8 }, META).payload
      const smallF32 = encodeDelta(randomDelta(13, { a: [5, 3], b: [4] }), { codec: 'f32' }, META).payload
      let accepted = 0
      let cases = 0
      const attempt = (p: Uint8Array) => {
        cases++
        try {
          validateDelta(p)
          decodeDelta(p)
          accepted++
        } catch (err) {
          if (!(err instanceof PayloadError)) throw new Error(`non-PayloadError on ${Buffer.from(p).toString('hex')}: ${(err as Error).stack}`)
        }
      }
      for (let k = 0; k < 3000; k++) {
        const p = new Uint8Array(Math.floor(r() * 200))
        for (let i = 0; i < p.length; i++) p[i] = Math.floor(r() * 256)
        if (k % 2 === 0 && p.length >= 6) p.set([0x43, 0x46, 0x44, 0x4c, 1, 0], 0) // reach past the magic
        attempt(p)
      }
      assert.equal(accepted, 0)
      let resealedAccepted = 0
      for (const base of [small, smallF32]) {
        accepted = 0
        for (let n = 0; n < base.length; n++) attempt(base.subarray(0, n))
        for (let i = 0; i < base.length; i++) {
          for (const bit of [1, 0x10, 0x80]) {
            const p = new Uint8Array(base)
            p[i] ^= bit
            attempt(p)
          }
        }
        assert.equal(accepted, 0, 'a flip survived the checksum')
        // Flips with a recomputed checksum reach the header parser and the value checks.
        for (let k = 0; k < 3000; k++) {
          const p = new Uint8Array(base)
          p[Math.floor(r() * (p.length - 8))] = Math.floor(r() * 256)
          attempt(reseal(p))
        }
        resealedAccepted += accepted
      }
      assert.ok(cases > 10000, `${cases} cases`)
      assert.ok(resealedAccepted > 0) // resealed body flips that stay canonical decode fine
    })
  })

  it('error feedback: reconstruction + residual == delta (to float32 rounding)', () => {
    const d = randomDelta(21, SHAPES)
    const { reconstruction } = encodeDelta(d, { codec: 'q8-block', blockSize: 32 }, META)
    const res = residual(d, reconstruction)
    const back = new Map([...reconstruction].map(([k, v]) => [k, { shape: v.shape, data: new Float32Array(v.data) }]))
    addInto(back, res)
    for (const [name, t] of d) {
      for (let i = 0; i < t.data.length; i++) assert.ok(Math.abs(back.get(name)!.data[i] - t.data[i]) <= Math.abs(t.data[i]) * 2 ** -23)
    }
  })
})

const GOLDEN_Q8 = 'fb63759b0b15dbc6bc0787bec887bf224427b31cdd5d66f50f3221befc519537'
