import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { encodeDelta, payloadDigests } from '../src/codec/index.js'
import { kernelBytes, releaseKernelBytes } from '../src/codec/kernel-arena.js'
import { FUSE_INPUTS, ownKernel, q8Kernel, setQ8Kernel, useQ8Kernel } from '../src/codec/wasm-q8.js'
import { CHUNK } from '../src/fusion/accumulate.js'
import { DeltaRejectedError, fuseRound, hashTensors, type DeltaFileInput, type DeltaInput, type FuseOptions } from '../src/fusion/index.js'
import { encodeSafetensors } from '../src/model/safetensors.js'
import type { TensorMap } from '../src/model/tensors.js'
import { mulberry32 } from '../src/data/rng.js'
import { deltaFileDir, resealed, seededTensors } from './helpers/payloads.js'

/**
 * The kernel's paths (every delta of a piece in one call when they share a block size or are all
 * float32, delta by delta otherwise) against the JS loop: the same bytes for any piece size,
 * number of deltas (more than the kernel takes at once) and source, and the same rejection.
 */

const SHAPES: Record<string, number[]> = {
  'a.weight': [37, 29],
  'b.bias': [1],
  'c.weight': [203, 11],
  'd.empty': [0, 4],
  'e.weight': [5000],
}

const tensors = (seed: number, scale: number): TensorMap => seededTensors(SHAPES, seed, scale)

const base = tensors(1, 0.1)
const baseHash = hashTensors(base)
const bytesOf = (t: TensorMap) => Buffer.from(encodeSafetensors(t))

function deltas(count: number, blockSize: (k: number) => number, seed = 300): DeltaInput[] {
  return Array.from({ length: count }, (_, k) => {
    const examples = 5 + 3 * k
    const e = encodeDelta(tensors(seed + k, 1e-2 * (1 + (k % 5))), { codec: 'q8-block', blockSize: blockSize(k) }, { round: 3, baseHash, examples })
    return { id: e.deltaId, payload: e.payload, examples }
  })
}

/** Dense float32 deltas, some with values of very different sizes (sums that lose low bits). */
function f32Deltas(count: number, seed = 500): DeltaInput[] {
  return Array.from({ length: count }, (_, k) => {
    const examples = 4 + 5 * k
    const e = encodeDelta(tensors(seed + k, 10 ** ((k % 4) - 2)), { codec: 'f32' }, { round: 3, baseHash, examples })
    return { id: e.deltaId, payload: e.payload, examples }
  })
}

const RULES: [string, Record<string, number>][] = [
  ['mean', {}],
  ['weighted-mean', {}],
  ['task-arithmetic', { scale: 0.7 }],
  ['dare', { drop: 0.3, scale: 1.5 }],
]

/** The result bytes, or the rejection as [message, reason, delta id]. */
function outcome(inputs: (DeltaInput | DeltaFileInput)[], opts: FuseOptions, kernel: boolean): Buffer | string[] {
  useQ8Kernel(kernel)
  try {
    return bytesOf(fuseRound(base, inputs, { baseHash, ...opts }))
  } catch (err) {
    assert.ok(err instanceof DeltaRejectedError, (err as Error).stack)
    return [err.message, err.reason, err.deltaId]
  } finally {
    useQ8Kernel(true)
  }
}

/** The deltas with their payloads copied into the kernel arena, where the kernel reads them in place. */
function inArena(ds: DeltaInput[]): DeltaInput[] {
  return ds.map((d) => {
    const p = kernelBytes(d.payload.length)
    p.set(d.payload)
    return { ...d, payload: p }
  })
}

/** `check` on the deltas copied into the arena, which are given back after. */
function withArena<T>(ds: DeltaInput[], check: (inArena: DeltaInput[]) => T): T {
  const a = inArena(ds)
  try {
    return check(a)
  } finally {
    for (const d of a) releaseKernelBytes(d.payload)
  }
}

describe('fusion kernel paths', () => {
  const { toFiles } = deltaFileDir('cfd-fusion-kernel-')

  /** The kernel gives the JS loop's bytes for every summing rule and piece size, from memory and from files. */
  function sameAsJsLoop(ds: DeltaInput[], label: string): void {
    for (const [rule, params] of RULES) {
      const want = outcome(ds, { rule, params }, false)
      assert.ok(Buffer.isBuffer(want))
      for (const chunk of [1, 7, 16, 17, 100, 4096, undefined]) {
        assert.ok(want.equals(outcome(ds, { rule, params, chunk }, true) as Buffer), `${label}, ${rule}, chunk ${chunk}`)
      }
    }
    assert.ok((outcome(ds, {}, false) as Buffer).equals(outcome(toFiles(ds), { chunk: 50 }, true) as Buffer), `${label}, from files`)
    withArena(ds, (a) => {
      for (const chunk of [7, 100, undefined]) assert.ok((outcome(ds, {}, false) as Buffer).equals(outcome(a, { chunk }, true) as Buffer), `${label}, in the arena, chunk ${chunk}`)
    })
  }

  for (const B of [16, 33, 256]) {
    it(`blocks of ${B}: the same bytes as the JS loop for any piece size and delta count`, function () {
      this.timeout(120_000)
      for (const n of [1, 3, 8, 11]) sameAsJsLoop(deltas(n, () => B), `blocks of ${B}, n ${n}`)
    })
  }

  it('each input count 1 to 8 (a kernel function of its own) gives the JS loop\'s bytes, weighted or not', function () {
    this.timeout(120_000)
    for (let n = 1; n <= 8; n++) {
      const ds = deltas(n, () => 33, 700 + n)
      for (const rule of ['mean', 'weighted-mean']) {
        const want = outcome(ds, { rule }, false) as Buffer
        for (const chunk of [7, undefined]) assert.ok(want.equals(outcome(ds, { rule, chunk }, true) as Buffer), `${n} deltas, ${rule}, chunk ${chunk}`)
        withArena(ds, (a) => assert.ok(want.equals(outcome(a, { rule }, true) as Buffer), `${n} deltas, ${rule}, in the arena`))
      }
    }
  })

  it('float32 deltas: the same bytes as the JS loop for any piece size and delta count, from memory and from files', function () {
    this.timeout(120_000)
    for (const n of [1, 3, 8, 11]) sameAsJsLoop(f32Deltas(n), `float32, n ${n}`)
  })

  it('a non-finite float32 value is rejected as the JS loop rejects it, naming the same delta', function () {
    this.timeout(120_000)
    const r = mulberry32(99)
    const names = Object.keys(SHAPES).filter((n) => SHAPES[n].reduce((a, x) => a * x, 1) > 0)
    const SENTINEL = Math.fround(12345.678)
    for (let trial = 0; trial < 30; trial++) {
      const ds = f32Deltas(2 + (trial % 10), 900 + trial)
      // One value of one delta planted, found in the payload and made NaN, +Infinity or -Infinity.
      const k = Math.floor(r() * ds.length)
      const t = tensors(900 + trial + k, 10 ** ((k % 4) - 2))
      const name = names[Math.floor(r() * names.length)]
      t.get(name)!.data[Math.floor(r() * t.get(name)!.data.length)] = SENTINEL
      const p = new Uint8Array(encodeDelta(t, { codec: 'f32' }, { round: 3, baseHash, examples: ds[k].examples }).payload)
      const at = Buffer.from(p).indexOf(Buffer.from(new Float32Array([SENTINEL]).buffer))
      new DataView(p.buffer).setFloat32(at, [Number.NaN, Infinity, -Infinity][trial % 3], true)
      const bad = resealed(p)
      ds[k] = { id: payloadDigests(bad).id, payload: bad, examples: ds[k].examples }
      const want = outcome(ds, {}, false)
      assert.ok(!Buffer.isBuffer(want) && want[1] === 'non-finite' && want[2] === ds[k].id, `trial ${trial}: ${String(want)}`)
      const chunk = [1, 16, 100, undefined][trial % 4]
      assert.deepEqual(outcome(ds, { chunk }, true), want, `trial ${trial}`)
      withArena(ds, (a) => assert.deepEqual(outcome(a, { chunk }, true), want, `trial ${trial}, read in place`))
    }
  })

  it('gives the bytes fusion gave before the kernel took whole pieces (hashes recorded from that version)', function () {
    this.timeout(120_000)
    const lines: string[] = []
    for (const B of [16, 33, 256]) {
      for (const n of [3, 8, 11]) {
        const ds = deltas(n, () => B)
        for (const [rule, params] of RULES) {
          const hashes = new Set([undefined, 16, 100].map((chunk) => hashTensors(fuseRound(base, ds, { baseHash, rule, params, chunk }))))
          lines.push(`${B} ${n} ${rule}=${[...hashes].join(',')}\n`)
        }
      }
    }
    assert.equal(createHash('sha256').update(lines.join('')).digest('hex'), 'a8f7af24c4a3c4a51a77f21de77c019ae1a77824e8f50c580cc5d1791d12cf44')
  })

  it('deltas with different block sizes (delta by delta) give the same bytes as the JS loop', () => {
    const ds = deltas(9, (k) => [16, 33, 7][k % 3])
    for (const [rule, params] of RULES) {
      const want = outcome(ds, { rule, params }, false) as Buffer
      for (const chunk of [5, 64, undefined]) assert.ok(want.equals(outcome(ds, { rule, params, chunk }, true) as Buffer), `${rule}, chunk ${chunk}`)
    }
  })

  it('damaged values are rejected as the JS loop rejects them, naming the same delta', function () {
    this.timeout(120_000)
    const r = mulberry32(4242)
    let rejections = 0
    for (let trial = 0; trial < 60; trial++) {
      const B = [16, 33, 256][trial % 3]
      const ds = deltas(2 + (trial % 9), () => B, 700 + trial)
      // Damage one or two deltas: a -128 or a random byte anywhere after the header (values or scales).
      for (let hit = 0; hit < 1 + (trial % 2); hit++) {
        const k = Math.floor(r() * ds.length)
        const p = new Uint8Array(ds[k].payload)
        const headerEnd = 11 + p[6] + new DataView(p.buffer).getUint32(7 + p[6], true)
        const at = headerEnd + Math.floor(r() * (p.length - 8 - headerEnd))
        p[at] = r() < 0.6 ? 0x80 : Math.floor(r() * 256)
        const bad = resealed(p)
        ds[k] = { id: payloadDigests(bad).id, payload: bad, examples: ds[k].examples }
      }
      const want = outcome(ds, {}, false)
      if (!Buffer.isBuffer(want)) rejections++
      const chunk = [1, 16, 100, undefined][trial % 4]
      assert.deepEqual(outcome(ds, { chunk }, true), want, `trial ${trial}`)
      withArena(ds, (a) => assert.deepEqual(outcome(a, { chunk }, true), want, `trial ${trial}, read in place`))
    }
    assert.ok(rejections > 20, `only ${rejections} rejections`)
  })

  it('reads payloads that lie in the kernel arena in place: its slots are never written', () => {
    const kernel = q8Kernel()!
    // Every slot's values area (q8) and float area (f32) still holds what was put there.
    const untouched = () => Array.from({ length: FUSE_INPUTS }, (_, k) => kernel.slotQ(k).every((x) => x === 0x55) && kernel.slotF32(k).every((x) => x === 1.5)).every(Boolean)
    for (const ds of [deltas(8, () => 33), f32Deltas(8)]) {
      const want = outcome(ds, {}, false) as Buffer
      kernel.accumulator(CHUNK)
      for (let k = 0; k < FUSE_INPUTS; k++) {
        kernel.slotF32(k).fill(1.5)
        kernel.slotQ(k).fill(0x55)
      }
      withArena(ds, (a) => assert.ok(want.equals(outcome(a, {}, true) as Buffer)))
      assert.ok(untouched(), 'nothing was copied into the slots')
      assert.ok(want.equals(outcome(ds, {}, true) as Buffer))
      assert.ok(!untouched(), 'payloads outside the arena are copied into the slots')
    }
  })

  it('a kernel on a memory of its own copies arena payloads in rather than reading addresses of another memory', () => {
    const own = ownKernel()!
    const arenaKernel = q8Kernel()
    for (const ds of [deltas(8, () => 16), f32Deltas(3)]) {
      const want = outcome(ds, {}, false) as Buffer
      setQ8Kernel(own)
      try {
        withArena(ds, (a) => assert.ok(want.equals(outcome(a, { chunk: 100 }, true) as Buffer)))
      } finally {
        setQ8Kernel(arenaKernel)
      }
    }
  })
})
