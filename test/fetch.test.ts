import assert from 'node:assert/strict'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { createSwarmLibp2p, type SwarmLibp2p } from '../src/p2p/node.js'
import { BusyError, ContentProtocol } from '../src/p2p/fetch.js'
import { HolderPicker } from '../src/p2p/holders.js'
import { PeerKeeper } from '../src/p2p/dialer.js'
import { decodeMessage } from '../src/p2p/messages.js'
import { sha256Hex } from '../src/util/hash.js'
import { PayloadError } from '../src/util/errors.js'
import { silentLogger } from '../src/util/log.js'

const PROTO = '/coldfusion/1/test/fetch/3.0.0'

/** A fresh libp2p node with its own identity, listening on a loopback TCP port. */
async function loopbackNode(): Promise<SwarmLibp2p> {
  return createSwarmLibp2p({ privateKey: (await generateKeyPair('Ed25519')) as unknown as PrivateKey, listen: ['/ip4/127.0.0.1/tcp/0'], announce: [], mdns: false })
}

/** Waits until `content` is sending delta `id` to someone. */
async function untilUploading(content: ContentProtocol, id: string): Promise<void> {
  while (content.uploadsOf(id).length === 0) await new Promise((r) => setTimeout(r, 2))
}

/**
 * Three fresh nodes, all connected: the origin serves `payload`; A and B store nothing, so
 * whatever they serve they relay from a transfer they are receiving. `stop` stops all three.
 */
async function relayTrio(payload: Uint8Array) {
  const [origin, a, b] = [await loopbackNode(), await loopbackNode(), await loopbackNode()]
  const stop = () => Promise.all([origin.stop(), a.stop(), b.stop()])
  const id = sha256Hex(payload)
  const originContent = new ContentProtocol(origin, PROTO, async (_k, x) => (x === id ? payload : undefined), silentLogger())
  const aContent = new ContentProtocol(a, PROTO, async () => undefined, silentLogger())
  const bContent = new ContentProtocol(b, PROTO, async () => undefined, silentLogger())
  try {
    for (const c of [originContent, aContent, bContent]) await c.start()
    await a.dial(origin.getMultiaddrs()[0])
    await b.dial(origin.getMultiaddrs()[0])
    await b.dial(a.getMultiaddrs()[0])
  } catch (err) {
    await stop()
    throw err
  }
  return { origin, a, b, id, o: origin.peerId.toString(), originContent, aContent, bContent, stop }
}

describe('content protocol (two real libp2p nodes over TCP)', function () {
  this.timeout(60_000)
  let a: SwarmLibp2p
  let b: SwarmLibp2p
  const blobs = new Map<string, Uint8Array>()
  const big = new Uint8Array(3 * 1024 * 1024 + 17).map((_, i) => (i * 31) & 0xff)
  const bigId = sha256Hex(big)
  blobs.set(bigId, big)
  const liar = new Uint8Array([1, 2, 3])
  const liarId = sha256Hex(new Uint8Array([4, 5, 6]))
  blobs.set(liarId, liar)

  before(async () => {
    a = await loopbackNode()
    b = await loopbackNode()
    await new ContentProtocol(a, PROTO, async (_k, id) => blobs.get(id), silentLogger()).start()
    await b.dial(a.getMultiaddrs()[0])
  })
  after(async () => {
    await a?.stop()
    await b?.stop()
  })

  it('moves a multi-megabyte payload and verifies its sha256, repeatedly', async () => {
    const client = new ContentProtocol(b, PROTO, async () => undefined, silentLogger())
    for (let i = 0; i < 3; i++) {
      const got = await client.fetch(a.peerId.toString(), 'delta', bigId, 16 * 1024 * 1024, AbortSignal.timeout(10_000))
      assert.equal(sha256Hex(got), bigId)
    }
    assert.equal(client.stats.fetched, 3)
  })

  it('refuses oversized, missing and forged content', async () => {
    const client = new ContentProtocol(b, PROTO, async () => undefined, silentLogger())
    const peer = a.peerId.toString()
    await assert.rejects(client.fetch(peer, 'delta', bigId, 1024, AbortSignal.timeout(10_000)), (e: Error) => e instanceof PayloadError && e.reason === 'too-large')
    await assert.rejects(client.fetch(peer, 'delta', sha256Hex(new Uint8Array([0])), 1024, AbortSignal.timeout(10_000)), (e: Error) => e instanceof PayloadError && e.reason === 'not-found')
    await assert.rejects(client.fetch(peer, 'delta', liarId, 1024, AbortSignal.timeout(10_000)), (e: Error) => e instanceof PayloadError && e.reason === 'hash-mismatch')
  })
})

describe('holder selection (four real libp2p nodes over TCP)', function () {
  this.timeout(120_000)
  const nodes: SwarmLibp2p[] = []
  const served: ContentProtocol[] = []
  // Every node but the client holds the same six payloads; node 0 is their origin.
  const blobs = Array.from({ length: 6 }, (_, k) => new Uint8Array(512 * 1024 + k).map((_, i) => (i * 7 + k) & 0xff))
  const ids = blobs.map((b) => sha256Hex(b))
  const store = new Map(ids.map((id, k) => [id, blobs[k]]))

  before(async () => {
    for (let i = 0; i < 4; i++) {
      const node = await loopbackNode()
      const content = new ContentProtocol(node, PROTO, async (_k, id) => (i === 0 || i === 1 || i === 2 ? store.get(id) : undefined), silentLogger())
      await content.start()
      nodes.push(node)
      served.push(content)
    }
    for (let i = 0; i < 3; i++) await nodes[3].dial(nodes[i].getMultiaddrs()[0])
  })
  after(async () => {
    await Promise.all(nodes.map((n) => n.stop()))
  })

  it('spreads concurrent fetches over every holder, not only the origin', async () => {
    const client = served[3]
    const picker = new HolderPicker(nodes[3].peerId.toString())
    const holders = nodes.slice(0, 3).map((n) => n.peerId.toString())
    const got = await Promise.all(ids.map((id) => picker.fetch(client, 'delta', id, () => holders, 4 * 1024 * 1024, AbortSignal.timeout(30_000))))
    got.forEach((g, k) => assert.equal(sha256Hex(g.bytes), ids[k]))
    // Least-loaded first: six fetches over three holders, two each.
    assert.deepEqual(served.slice(0, 3).map((s) => s.stats.served), [2, 2, 2])
    assert.equal(new Set(got.map((g) => g.from)).size, 3)
  })

  it('falls back to another holder when one does not have the content or fails its check', async () => {
    const client = served[3]
    const picker = new HolderPicker(nodes[3].peerId.toString())
    const before = served.map((s) => s.stats.served)
    // The client itself is listed as a holder and skipped; the first holder's bytes fail the check.
    const liarHolders = [nodes[3], nodes[0], nodes[1], nodes[2]].map((n) => n.peerId.toString())
    const errors: string[] = []
    let checks = 0
    const { bytes, from } = await picker.fetch(client, 'delta', ids[0], () => liarHolders, 4 * 1024 * 1024, AbortSignal.timeout(30_000), {
      check: () => {
        if (checks++ === 0) throw new PayloadError('rejected once', 'invalid')
      },
      onError: (peer) => errors.push(peer),
    })
    assert.equal(sha256Hex(bytes), ids[0])
    assert.equal(errors.length, 1)
    assert.notEqual(errors[0], from)
    assert.equal(served.reduce((n, s, i) => n + s.stats.served - before[i], 0), 2)
    // No holder has it: every one answers not-found, and the last error comes back, not a hang.
    const missing = sha256Hex(new Uint8Array([9]))
    await assert.rejects(picker.fetch(client, 'delta', missing, () => liarHolders, 1024, AbortSignal.timeout(30_000)), (e: Error) => e instanceof PayloadError && e.reason === 'not-found')
  })

  it("accepts a well-formed 'have' advertisement and rejects bad ones", () => {
    const swarm = 'ab'.repeat(32)
    const have = { type: 'have', v: 1, swarm, round: 2, base: 'cd'.repeat(32), deltas: [...ids].sort() }
    const enc = (m: unknown) => new TextEncoder().encode(JSON.stringify(m))
    assert.deepEqual(decodeMessage(enc(have), swarm), have)
    for (const bad of [{ ...have, deltas: [...have.deltas].reverse() }, { ...have, deltas: ['xyz'] }, { ...have, round: 0 }, { ...have, extra: 1 }]) {
      assert.throws(() => decodeMessage(enc(bad), swarm), (e: Error) => e instanceof PayloadError)
    }
  })

  it('prefers a connected holder, and dials a far one only after connectedWaitMs', async () => {
    const client = served[3]
    const self = nodes[3].peerId.toString()
    const connected = (p: string) => nodes[3].getConnections().some((c) => c.remotePeer.toString() === p)
    const picker = new HolderPicker(self, connected)
    // A fifth node holds the content too, but the client has only its address, no connection.
    const far = await loopbackNode()
    const farContent = new ContentProtocol(far, PROTO, async (_k, id) => store.get(id), silentLogger())
    await farContent.start()
    try {
      await nodes[3].peerStore.merge(far.peerId, { multiaddrs: far.getMultiaddrs() })
      const farId = far.peerId.toString()
      const near = nodes[1].peerId.toString()
      assert.deepEqual(picker.order(ids[0], [farId, near]), [near, farId], 'connected first, even when listed later')
      // Only the far holder is known at first; a connected one appears while the client waits.
      const holders = [farId]
      setTimeout(() => holders.push(near), 300)
      const got = await picker.fetch(client, 'delta', ids[0], () => holders, 4 * 1024 * 1024, AbortSignal.timeout(30_000), { connectedWaitMs: 10_000 })
      assert.equal(got.from, near)
      assert.equal(farContent.stats.served, 0)
      assert.equal(connected(farId), false, 'no connection was opened to the far holder')
      // With no connected holder at all, the far one is dialed once the wait is over.
      const alone = await picker.fetch(client, 'delta', ids[1], () => [farId], 4 * 1024 * 1024, AbortSignal.timeout(30_000), { connectedWaitMs: 200 })
      assert.equal(alone.from, farId)
      assert.equal(sha256Hex(alone.bytes), ids[1])
      assert.equal(farContent.stats.served, 1)
    } finally {
      await far.stop()
    }
  })

  it('reaches a far holder the peer store has no address for, through the addresses its gossip gave', async () => {
    const far = await loopbackNode()
    const farContent = new ContentProtocol(far, PROTO, async (_k, id) => store.get(id), silentLogger())
    await farContent.start()
    // A client of its own: the shared one's peer store may have learned addresses in other tests.
    const lone = await loopbackNode()
    try {
      const client = new ContentProtocol(lone, PROTO, async () => undefined, silentLogger())
      const farId = far.peerId.toString()
      await assert.rejects(client.fetch(farId, 'delta', ids[2], 4 * 1024 * 1024, AbortSignal.timeout(10_000)), /no valid addresses/)
      const learned = new Map([[farId, far.getMultiaddrs().map((m) => m.toString())]])
      client.addressesOf = (peer) => learned.get(peer)
      const got = await client.fetch(farId, 'delta', ids[2], 4 * 1024 * 1024, AbortSignal.timeout(10_000))
      assert.equal(sha256Hex(got), ids[2])
      assert.equal(farContent.stats.served, 1)
      // The keeper lets such a connection go when it is over its peer budget, and keeps it when there is room.
      const keeper = (n: number) => new PeerKeeper(lone, [], silentLogger(), n)
      const connectedToFar = () => lone.getConnections(far.peerId).length > 0
      assert.equal(connectedToFar(), true)
      keeper(1).releaseFar(farId)
      assert.equal(connectedToFar(), true, 'one connection, room for one')
      keeper(0).releaseFar(farId)
      for (let i = 0; i < 50 && connectedToFar(); i++) await new Promise((r) => setTimeout(r, 20))
      assert.equal(connectedToFar(), false, 'over budget: closed')
    } finally {
      await lone.stop()
      await far.stop()
    }
  })

  it("a busy holder points to the peer it is sending to, which relays the delta as it arrives", async () => {
    // Three fresh nodes, all connected: the origin holds a 48 MiB delta; A fetches it, then B.
    // A stores nothing: whatever it serves, it serves from the transfer it is receiving.
    const { a, b, id, o, originContent, aContent, bContent, stop } = await relayTrio(new Uint8Array(48 * 1024 * 1024).map((_, i) => (i * 13) & 0xff))
    try {
      const aFetch = aContent.fetch(o, 'delta', id, 64 * 1024 * 1024, AbortSignal.timeout(30_000))
      await untilUploading(originContent, id)
      // The origin's one upload slot for this delta is A's until A has it all.
      await assert.rejects(bContent.fetch(o, 'delta', id, 64 * 1024 * 1024, AbortSignal.timeout(30_000)),
        (e: Error) => e instanceof BusyError && e.reason === 'busy' && e.peers.length === 1 && e.peers[0] === a.peerId.toString())
      // B's picker knows only the origin; the busy answer leads it to A.
      const picker = new HolderPicker(b.peerId.toString())
      const got = await picker.fetch(bContent, 'delta', id, () => [o], 64 * 1024 * 1024, AbortSignal.timeout(30_000))
      assert.equal(sha256Hex(await aFetch), id)
      assert.equal(sha256Hex(got.bytes), id)
      assert.equal(got.from, a.peerId.toString(), 'relayed by A')
      assert.equal(originContent.stats.served, 1, 'the origin uploaded it once')
      assert.equal(aContent.stats.served, 1)
    } finally {
      await stop()
    }
  })

  it('a relay killed mid-transfer: its reader falls back to the origin and still gets the verified delta', async () => {
    const { a, b, id, o, aContent, bContent, originContent, stop } = await relayTrio(new Uint8Array(48 * 1024 * 1024).map((_, i) => (i * 29) & 0xff))
    try {
      const aFetch = aContent.fetch(o, 'delta', id, 64 * 1024 * 1024, AbortSignal.timeout(30_000)).catch((e: Error) => e)
      await untilUploading(originContent, id)
      const errors: string[] = []
      const picker = new HolderPicker(b.peerId.toString())
      const bFetch = picker.fetch(bContent, 'delta', id, () => [o], 64 * 1024 * 1024, AbortSignal.timeout(60_000), { onError: (peer, err) => errors.push(`${peer === o ? 'origin' : 'relay'}: ${(err as PayloadError).reason}`) })
      // Kill the relay once it is sending to B.
      await untilUploading(aContent, id)
      await a.stop()
      const got = await bFetch
      assert.equal(sha256Hex(got.bytes), id)
      assert.equal(got.from, o, 'the origin served it after the relay died')
      assert.ok(errors.includes('origin: busy'), errors.join(', '))
      assert.ok(errors.some((e) => e.startsWith('relay:') && e !== 'relay: busy'), errors.join(', '))
      assert.ok((await aFetch) instanceof Error)
    } finally {
      await stop()
    }
  })

  it('a relay whose own transfer has not started answers not-found after a short wait, not never', async () => {
    const [stall, a, b] = [await loopbackNode(), await loopbackNode(), await loopbackNode()]
    // An upstream that takes the request and never answers.
    await stall.handle(PROTO, () => {})
    const aContent = new ContentProtocol(a, PROTO, async () => undefined, silentLogger())
    const bContent = new ContentProtocol(b, PROTO, async () => undefined, silentLogger())
    try {
      await aContent.start()
      await bContent.start()
      await a.dial(stall.getMultiaddrs()[0])
      await b.dial(a.getMultiaddrs()[0])
      const id = sha256Hex(new Uint8Array([42]))
      const stalled = aContent.fetch(stall.peerId.toString(), 'delta', id, 1024, AbortSignal.timeout(20_000)).catch((e: Error) => e)
      await new Promise((r) => setTimeout(r, 100))
      const t0 = Date.now()
      await assert.rejects(bContent.fetch(a.peerId.toString(), 'delta', id, 1024, AbortSignal.timeout(20_000)), (e: Error) => e instanceof PayloadError && e.reason === 'not-found')
      const waited = Date.now() - t0
      assert.ok(waited >= 1500 && waited < 10_000, `answered after ${waited} ms`)
      await a.stop()
      assert.ok((await stalled) instanceof Error)
    } finally {
      await Promise.all([stall.stop(), a.stop(), b.stop()])
    }
  })

  it("accepts a well-formed 'hello' and rejects bad ones", () => {
    const swarm = 'ab'.repeat(32)
    const hello = { type: 'hello', v: 1, swarm, round: 0, base: 'cd'.repeat(32), addrs: ['/memory/x'] }
    const enc = (m: unknown) => new TextEncoder().encode(JSON.stringify(m))
    assert.deepEqual(decodeMessage(enc(hello), swarm), hello)
    for (const bad of [{ ...hello, round: -1 }, { ...hello, base: 'zz' }, { ...hello, addrs: Array(9).fill('/memory/x') }, { ...hello, extra: 1 }]) {
      assert.throws(() => decodeMessage(enc(bad), swarm), (e: Error) => e instanceof PayloadError)
    }
    assert.throws(() => decodeMessage(enc({ ...hello, swarm: 'ef'.repeat(32) }), swarm), (e: Error) => e instanceof PayloadError && e.reason === 'wrong-swarm')
  })

  it('orders tied holders differently on different nodes', () => {
    const holders = Array.from({ length: 8 }, (_, i) => `peer-${i}`)
    const firsts = new Set(Array.from({ length: 16 }, (_, n) => new HolderPicker(`node-${n}`).order(ids[0], holders)[0]))
    assert.ok(firsts.size >= 3, `first choices: ${[...firsts].join(', ')}`)
    assert.deepEqual(new HolderPicker('node-1').order(ids[0], holders), new HolderPicker('node-1').order(ids[0], holders))
  })
})
