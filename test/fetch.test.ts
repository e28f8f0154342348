import assert from 'node:assert/strict'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { createSwarmLibp2p, type SwarmLibp2p } from '../src/p2p/node.js'
import { ContentProtocol } from '../src/p2p/fetch.js'
import { sha256Hex } from '../src/util/hash.js'
import { PayloadError } from '../src/util/errors.js'
import { silentLogger } from '../src/util/log.js'

const PROTO = '/coldfusion/1/test/fetch/1.0.0'

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
    const key = async (): Promise<PrivateKey> => (await generateKeyPair('Ed25519')) as unknown as PrivateKey
    a = await createSwarmLibp2p({ privateKey: await key(), listen: ['/ip4/127.0.0.1/tcp/0'], announce: [], mdns: false })
    b = await createSwarmLibp2p({ privateKey: await key(), listen: ['/ip4/127.0.0.1/tcp/0'], announce: [], mdns: false })
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
