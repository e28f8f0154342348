import assert from 'node:assert/strict'
import { decodeMessage, encodeMessage, type GossipMessage } from '../src/p2p/messages.js'
import { parseHeader, parseRequest } from '../src/p2p/fetch.js'
import { parseLineageRecord } from '../src/rounds/sync.js'
import { encodeDelta, validateDelta } from '../src/codec/index.js'
import { decodeSafetensors, encodeSafetensors } from '../src/model/safetensors.js'
import { hashTensors } from '../src/fusion/index.js'
import type { TensorMap } from '../src/model/tensors.js'
import { PayloadError } from '../src/util/errors.js'
import { sha256Hex } from '../src/util/hash.js'
import { mulberry32 } from '../src/data/rng.js'
import { recordRow } from './helpers/fault-report.js'

/**
 * Fuzzing every format a peer can send: random bytes, truncations and byte mutations of valid
 * inputs, and inputs malformed by construction. A crash is any exception other than PayloadError;
 * an accepted malformed input is one that should have been refused and was not.
 */

const N = Number(process.env.FUZZ_CASES ?? 5000)
const rnd = mulberry32(20261126)
const P = '12D3KooWEyoppNCUx8Yx66oV9fJnriXwCcXwDDUA2kj6vnc6iDEp'
const h = (s: string): string => sha256Hex(Buffer.from(s))
const SWARM = h('swarm')

function mutate(valid: Uint8Array): Uint8Array {
  switch (Math.floor(rnd() * 4)) {
    case 0:
      return Uint8Array.from({ length: Math.floor(rnd() * 300) }, () => Math.floor(rnd() * 256))
    case 1:
      return valid.slice(0, Math.floor(rnd() * valid.length))
    case 2: {
      const b = new Uint8Array(valid)
      for (let k = 1 + Math.floor(rnd() * 4); k > 0; k--) b[Math.floor(rnd() * b.length)] = Math.floor(rnd() * 256)
      return b
    }
    default: {
      const b = new Uint8Array(valid.length + 1 + Math.floor(rnd() * 8))
      b.set(valid)
      for (let i = valid.length; i < b.length; i++) b[i] = Math.floor(rnd() * 256)
      return b
    }
  }
}

interface Tally { format: string; cases: number; crashes: number; acceptedMalformed: number }

/** Run `parse` on N mutated inputs; `malformed(input)` says whether accepting it would be wrong. */
function fuzz(format: string, valid: Uint8Array, parse: (b: Uint8Array) => unknown, malformed: (b: Uint8Array) => boolean): Tally {
  const t: Tally = { format, cases: 0, crashes: 0, acceptedMalformed: 0 }
  for (let i = 0; i < N; i++) {
    const input = mutate(valid)
    t.cases++
    try {
      parse(input)
      if (malformed(input)) t.acceptedMalformed++
    } catch (err) {
      if (!(err instanceof PayloadError)) t.crashes++
    }
  }
  return t
}

const same = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((x, i) => x === b[i])

describe('fuzzing the wire formats and the payload codec', function () {
  this.timeout(300_000)
  const tallies: Tally[] = []
  after(async () => {
    for (const t of tallies) await recordRow('fuzz', { ...t })
  })

  it('gossip messages: only PayloadError, and every accepted message is schema-valid', () => {
    const msgs: GossipMessage[] = [
      { type: 'announce', v: 1, swarm: SWARM, round: 3, base: h('b'), deltaId: h('d'), size: 1000, examples: 5, addrs: ['/ip4/1.2.3.4/tcp/1'] },
      { type: 'vote', v: 1, swarm: SWARM, round: 3, base: h('b'), deltas: [{ id: h('1'), peer: P, examples: 1 }, { id: h('2'), peer: P, examples: 2 }].sort((a, b) => (a.id < b.id ? -1 : 1)) },
      { type: 'commit', v: 1, swarm: SWARM, round: 3, base: h('b'), hash: h('n'), rule: 'mean', contributors: 1 },
    ]
    for (const m of msgs) {
      const valid = encodeMessage(m)
      // Accepting a mutation is fine only if it re-encodes to itself (a different but valid message).
      const t = fuzz(`gossip ${m.type}`, valid, (b) => decodeMessage(b, SWARM), (b) => {
        const back = encodeMessage(decodeMessage(b, SWARM))
        return !same(back, b) && JSON.stringify(JSON.parse(Buffer.from(b).toString())) !== Buffer.from(back).toString()
      })
      tallies.push(t)
      assert.equal(t.crashes, 0)
      assert.equal(t.acceptedMalformed, 0)
    }
    // Malformed by construction: each must be refused.
    const base = msgs[0] as Record<string, unknown>
    const bad = [
      { ...base, round: 0 }, { ...base, round: 1.5 }, { ...base, size: -1 }, { ...base, swarm: h('other') }, { ...base, v: 2 },
      { ...base, deltaId: 'z'.repeat(64) }, { ...base, addrs: Array(9).fill('/ip4/1.1.1.1/tcp/1') }, { ...base, extra: true },
      (({ deltaId, ...rest }) => rest)(base as { deltaId: string }), { ...msgs[1], deltas: [...(msgs[1] as { deltas: unknown[] }).deltas].reverse() },
    ]
    for (const m of bad) assert.throws(() => decodeMessage(Buffer.from(JSON.stringify(m)), SWARM), PayloadError)
  })

  it('fetch requests and response headers', () => {
    const req = Buffer.from(JSON.stringify({ kind: 'delta', id: h('x') }))
    const hdr = Buffer.from(JSON.stringify({ status: 'ok', size: 1234 }))
    const t1 = fuzz('fetch request', req, parseRequest, () => false)
    const t2 = fuzz('fetch header', hdr, parseHeader, () => false)
    tallies.push(t1, t2)
    for (const t of [t1, t2]) assert.equal(t.crashes, 0)
    for (const m of [{ kind: 'delta', id: 'short' }, { kind: 'file', id: h('x') }, { kind: 'delta', id: h('x'), more: 1 }]) assert.throws(() => parseRequest(Buffer.from(JSON.stringify(m))), PayloadError)
    for (const m of [{ status: 'ok', size: -5 }, { status: 'ok', size: 2 ** 60 }, { status: 'maybe' }]) assert.throws(() => parseHeader(Buffer.from(JSON.stringify(m))), PayloadError)
  })

  it('lineage records: mutated records are refused unless still valid and bound to the hash asked for', () => {
    const rec = { round: 2, parent: h('p'), hash: h('n'), deltas: [{ id: h('1'), peer: P, examples: 3 }], rule: 'mean' }
    const t = fuzz('lineage record', Buffer.from(JSON.stringify(rec)), (b) => parseLineageRecord(b, rec.hash), () => false)
    tallies.push(t)
    assert.equal(t.crashes, 0)
    assert.throws(() => parseLineageRecord(Buffer.from(JSON.stringify(rec)), h('other')), /asked for the record/)
  })

  it('delta payloads: no mutation passes the container checks', () => {
    const r = mulberry32(5)
    const t0: TensorMap = new Map([['a', { shape: [40, 30], data: Float32Array.from({ length: 1200 }, () => r() - 0.5) }], ['b', { shape: [30], data: Float32Array.from({ length: 30 }, () => r()) }]])
    const baseHash = hashTensors(t0)
    for (const codec of ['q8-block', 'f32']) {
      const { payload } = encodeDelta(t0, { codec }, { round: 1, baseHash, examples: 9 })
      const t = fuzz(`delta payload ${codec}`, payload, (b) => validateDelta(b, { layout: t0, round: 1, baseHash }), (b) => !same(b, payload))
      tallies.push(t)
      assert.equal(t.crashes, 0)
      assert.equal(t.acceptedMalformed, 0)
    }
  })

  it('checkpoints (safetensors): only PayloadError; truncations are refused', () => {
    const t0: TensorMap = new Map([['x.weight', { shape: [8, 8], data: new Float32Array(64).fill(0.5) }]])
    const valid = encodeSafetensors(t0)
    const t = fuzz('checkpoint (safetensors)', valid, (b) => decodeSafetensors(b), (b) => b.length < valid.length && valid.subarray(0, b.length).every((x, i) => x === b[i]))
    tallies.push(t)
    assert.equal(t.crashes, 0)
    assert.equal(t.acceptedMalformed, 0)
  })
})
