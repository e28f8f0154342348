import assert from 'node:assert/strict'
import { chooseFork, missingVoters, selectContributors, unionOfVotes } from '../src/rounds/agreement.js'
import { RepeatSchedule } from '../src/rounds/repeat.js'
import { fastMessageId } from '../src/p2p/node.js'
import { MemberView } from '../src/p2p/members.js'
import { RoundBook } from '../src/rounds/book.js'
import { decodeMessage, encodeMessage, MAX_GOSSIP_BYTES, type Announce } from '../src/p2p/messages.js'
import { PayloadError } from '../src/util/errors.js'
import { sha256Hex } from '../src/util/hash.js'

const h = (s: string): string => sha256Hex(Buffer.from(s))
const P1 = '12D3KooWEyoppNCUx8Yx66oV9fJnriXwCcXwDDUA2kj6vnc6iDEp'
const P2 = '12D3KooWHFrmLWTTDD4NodngtRMEVYgxrsDMp4F2ZGkXhWrAVZvo'

describe('agreement rules', () => {
  it('the union of votes is sorted and independent of arrival order', () => {
    const a = { id: h('a'), peer: P1, examples: 1 }
    const b = { id: h('b'), peer: P2, examples: 2 }
    const c = { id: h('c'), peer: P1, examples: 3 }
    const u1 = unionOfVotes([[a, b], [c], [b]])
    const u2 = unionOfVotes([[b], [c, a], []])
    assert.deepEqual(u1, u2)
    assert.deepEqual(u1.map((x) => x.id), [a.id, b.id, c.id].sort())
    assert.deepEqual(missingVoters(u1, new Set([P1])), [P2])
  })

  it('fork choice: most advanced round, then most supporters, then lowest hash', () => {
    assert.equal(chooseFork([{ round: 3, base: 'b', supporters: 2 }, { round: 3, base: 'a', supporters: 1 }])?.base, 'b')
    assert.equal(chooseFork([{ round: 3, base: 'b', supporters: 2 }, { round: 3, base: 'a', supporters: 2 }])?.base, 'a')
    assert.equal(chooseFork([{ round: 3, base: 'b', supporters: 5 }, { round: 4, base: 'c', supporters: 1 }])?.base, 'c')
    // The order candidates are seen in does not matter.
    const cs = [{ round: 2, base: 'x', supporters: 1 }, { round: 2, base: 'w', supporters: 1 }, { round: 1, base: 'a', supporters: 9 }]
    assert.equal(chooseFork(cs)?.base, 'w')
    assert.equal(chooseFork([...cs].reverse())?.base, 'w')
    assert.equal(chooseFork([]), undefined)
  })

  it('bounded contributors: the k lowest tickets, the same in any order, a new draw for a new base', () => {
    const members = Array.from({ length: 40 }, (_, i) => `peer-${i}`)
    const a = selectContributors(5, h('base'), members, 8)
    assert.equal(a.size, 8)
    assert.deepEqual([...selectContributors(5, h('base'), [...members].reverse(), 8)].sort(), [...a].sort())
    // Duplicates in a view do not take two seats; k larger than the swarm means everyone.
    assert.equal(selectContributors(5, h('base'), [...members, ...members], 8).size, 8)
    assert.equal(selectContributors(5, h('base'), members.slice(0, 3), 8).size, 3)
    // A node missing from one view only lets the next ticket in: the others stay drawn.
    const absent = [...a][0]
    const b = selectContributors(5, h('base'), members.filter((m) => m !== absent), 8)
    assert.equal([...a].filter((p) => b.has(p)).length, 7)
    // Over many rounds every member gets drawn.
    const drawn = new Set<string>()
    for (let r = 1; r <= 40; r++) for (const p of selectContributors(r, h(`base${r}`), members, 8)) drawn.add(p)
    assert.equal(drawn.size, members.length)
  })

  it('own gossip repeats back off while nothing changes, and restart after a change or a join', () => {
    let now = 0
    const s = new RepeatSchedule(1000, 8000, () => now)
    const times: number[] = []
    for (now = 0; now <= 40_000; now += 100) if (s.due()) times.push(now)
    assert.deepEqual(times, [1000, 3000, 7000, 15000, 23000, 31000, 39000])
    s.reset()
    now += 999
    assert.equal(s.due(), false)
    now += 1
    assert.equal(s.due(), true)
  })

  it('members: direct subscribers, and far authors until their silence outlasts the ttl', () => {
    let now = 0
    const v = new MemberView(10_000, () => now)
    assert.equal(v.heardFrom('far-b'), true, 'first heard: new')
    assert.equal(v.heardFrom('far-b'), false, 'heard again: not new')
    v.heardFrom('far-a')
    assert.deepEqual(v.list(['direct']), ['direct', 'far-a', 'far-b'])
    now = 8000
    v.heardFrom('far-a')
    now = 12_000
    assert.deepEqual(v.list(['direct']), ['direct', 'far-a'], 'far-b silent for 12 s is gone')
    assert.equal(v.heardFrom('far-b'), true, 'back after expiry: new again')
    // A direct peer that disconnects is gone at once, even if it spoke a moment ago.
    v.forget('far-a')
    assert.deepEqual(v.list([]), ['far-b'])
  })

  it('a fast message id tells copies apart from forgeries without a signature check', () => {
    const m = { from: new Uint8Array([1, 2]), seqno: new Uint8Array([0, 0, 0, 7]), topic: 't', data: new Uint8Array([9, 9]) }
    assert.equal(fastMessageId(m), fastMessageId({ ...m, data: new Uint8Array([9, 9]) }))
    assert.notEqual(fastMessageId(m), fastMessageId({ ...m, data: new Uint8Array([9, 8]) }))
    assert.notEqual(fastMessageId(m), fastMessageId({ ...m, seqno: new Uint8Array([0, 0, 0, 8]) }))
    assert.notEqual(fastMessageId(m), fastMessageId({ ...m, topic: 'u' }))
    // Field boundaries count: moving a byte from one field to the next is another message.
    assert.notEqual(fastMessageId({ ...m, from: new Uint8Array([1]), seqno: new Uint8Array([2, 0, 0, 0, 7]) }), fastMessageId(m))
  })

  it('the round book is idempotent and bounded', () => {
    const book = new RoundBook(2)
    const c = { id: h('x'), peer: P1, examples: 5 }
    book.addAnnounce(1, h('base'), c, 100, P1)
    book.addAnnounce(1, h('base'), c, 100, P1)
    book.addVote(1, h('base'), P2, [c])
    assert.equal(book.view(1, h('base')).deltas.size, 1)
    assert.deepEqual([...book.view(1, h('base')).deltas.get(c.id)!.providers].sort(), [P1, P2].sort())
    for (let i = 0; i < 10; i++) book.addAnnounce(1, h(`flood${i}`), c, 1, P2)
    assert.equal(book.basesOf(1).size, 2)
    book.prune(2)
    assert.equal(book.basesOf(1).size, 0)
  })
})

describe('gossip messages', () => {
  const swarm = h('swarm')
  const ann: Announce = { type: 'announce', v: 1, swarm, round: 1, base: h('b'), deltaId: h('d'), size: 10, examples: 5, addrs: [] }

  it('round-trips a valid message', () => {
    assert.deepEqual(decodeMessage(encodeMessage(ann), swarm), ann)
  })

  it('rejects malformed, foreign, unsorted and oversized messages with PayloadError', () => {
    const bad: [unknown, RegExp][] = [
      ['not json', /not valid JSON/],
      [{ ...ann, swarm: h('other') }, /another swarm/],
      [{ ...ann, round: -1 }, /schema/],
      [{ ...ann, extra: 1 }, /schema/],
      [{ ...ann, deltaId: 'xyz' }, /schema/],
      [{ type: 'vote', v: 1, swarm, round: 1, base: h('b'), deltas: [{ id: h('2'), peer: P1, examples: 1 }, { id: h('1'), peer: P1, examples: 1 }].sort((a, b) => (a.id < b.id ? 1 : -1)) }, /not sorted/],
    ]
    for (const [msg, re] of bad) {
      const bytes = typeof msg === 'string' ? Buffer.from(msg) : Buffer.from(JSON.stringify(msg))
      assert.throws(() => decodeMessage(bytes, swarm), (err: Error) => err instanceof PayloadError && re.test(err.message))
    }
    assert.throws(() => decodeMessage(new Uint8Array(MAX_GOSSIP_BYTES + 1), swarm), PayloadError)
    assert.throws(() => encodeMessage({ ...ann, addrs: Array(8).fill('x'.repeat(MAX_GOSSIP_BYTES / 4)) }), /gossip limit/)
  })

  it('never throws anything but PayloadError on random bytes', () => {
    let seed = 1
    const rnd = (): number => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32)
    const valid = encodeMessage(ann)
    for (let i = 0; i < 5000; i++) {
      const bytes = new Uint8Array(valid)
      const flips = 1 + Math.floor(rnd() * 4)
      for (let f = 0; f < flips; f++) bytes[Math.floor(rnd() * bytes.length)] = Math.floor(rnd() * 256)
      try {
        decodeMessage(bytes.subarray(0, Math.floor(rnd() * bytes.length) + 1), swarm)
      } catch (err) {
        assert.ok(err instanceof PayloadError, `unexpected ${(err as Error).name}: ${(err as Error).message}`)
      }
    }
  })
})
