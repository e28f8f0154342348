import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { encodeDelta, validateDelta } from '../codec/index.js'
import type { TensorMap } from '../model/tensors.js'
import { ContentProtocol } from '../p2p/fetch.js'
import { createSwarmLibp2p, type SwarmLibp2p } from '../p2p/node.js'
import { sha256Hex } from '../util/hash.js'
import { silentLogger } from '../util/log.js'
import { childMain } from './child.js'

/**
 * Real libp2p nodes (createSwarmLibp2p + ContentProtocol) in one process over TCP loopback. A
 * delta is announced on gossipsub; a node that hears of it fetches it from a random peer known
 * to hold it (the author, or any node that announced "have"), verifies it (sha256 in the fetch,
 * then the full container check a node runs), keeps it, serves it and announces "have".
 */

export interface PropagationJob {
  nodes: number
  payloadBytes: number
  /** 'single': one transfer between two nodes; 'one': one delta to all; 'all': every node's delta to all (a round). */
  scenario: 'single' | 'one' | 'all'
  repeats: number
}

export interface PropagationResult {
  nodes: number
  scenario: PropagationJob['scenario']
  payloadBytes: number
  seconds: number
  /** Delta bytes each node downloaded / uploaded (content protocol only). */
  downloaded: number[]
  uploaded: number[]
}

const PROTOCOL = '/coldfusion-bench/fetch/1.0.0'
const TOPIC = '/coldfusion-bench/have/json'

/** A q8-block payload of about `bytes` bytes: 4 tensors of noise. */
function makePayload(bytes: number, seed: number): { layout: TensorMap; payload: Uint8Array; id: string } {
  const per = Math.max(1, Math.floor(bytes / 1.016 / 4))
  const layout: TensorMap = new Map()
  let s = seed >>> 0 || 1
  for (let t = 0; t < 4; t++) {
    const data = new Float32Array(per)
    for (let i = 0; i < per; i++) {
      s ^= s << 13
      s ^= s >>> 17
      s ^= s << 5
      data[i] = ((s >>> 0) / 4294967296 - 0.5) * 1e-3
    }
    layout.set(`t${t}`, { shape: [per], data })
  }
  const { payload, deltaId } = encodeDelta(layout, { codec: 'q8-block', blockSize: 256 }, { round: 1, baseHash: 'ab'.repeat(32), examples: 1 })
  return { layout, payload, id: deltaId }
}

interface Peer {
  node: SwarmLibp2p
  id: string
  content: ContentProtocol
  store: Map<string, Uint8Array>
  holders: Map<string, Set<string>>
  /** Callbacks of fetch loops waiting for news of a holder. */
  waiters: Set<() => void>
}

async function startNet(n: number): Promise<Peer[]> {
  const peers: Peer[] = []
  for (let i = 0; i < n; i++) {
    const node = await createSwarmLibp2p({ privateKey: (await generateKeyPair('Ed25519')) as unknown as PrivateKey, listen: ['/ip4/127.0.0.1/tcp/0'], announce: [], mdns: false })
    await node.start()
    const store = new Map<string, Uint8Array>()
    const content = new ContentProtocol(node, PROTOCOL, async (_kind, id) => store.get(id), silentLogger())
    await content.start()
    const peer: Peer = { node, id: node.peerId.toString(), content, store, holders: new Map(), waiters: new Set() }
    node.services.pubsub.subscribe(TOPIC)
    node.services.pubsub.addEventListener('message', (evt) => {
      if (evt.detail.topic !== TOPIC || evt.detail.type !== 'signed') return
      const { id } = JSON.parse(new TextDecoder().decode(evt.detail.data)) as { id: string }
      const set = peer.holders.get(id) ?? new Set<string>()
      set.add(evt.detail.from.toString())
      peer.holders.set(id, set)
      for (const w of peer.waiters) w()
      peer.waiters.clear()
    })
    peers.push(peer)
  }
  for (let i = 1; i < n; i++) for (let j = 0; j < i; j++) await dialWithRetry(peers[i].node, peers[j].node)
  // Every node must see every other as a subscriber, and gossipsub must have built its mesh.
  const deadline = Date.now() + 20_000
  while (peers.some((p) => p.node.services.pubsub.getSubscribers(TOPIC).length < n - 1)) {
    if (Date.now() > deadline) throw new Error('gossip subscriptions did not spread in 20 s')
    await new Promise((r) => setTimeout(r, 50))
  }
  await new Promise((r) => setTimeout(r, 1500))
  return peers
}

/** A handshake on a loaded machine can fail once (e.g. a stalled noise handshake): try again. */
async function dialWithRetry(from: SwarmLibp2p, to: SwarmLibp2p): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await from.dial(to.getMultiaddrs()[0], { signal: AbortSignal.timeout(20_000) })
      return
    } catch (err) {
      if (attempt >= 4) throw err
      await new Promise((r) => setTimeout(r, 250 * attempt))
    }
  }
}

function announce(p: Peer, id: string): Promise<unknown> {
  return p.node.services.pubsub.publish(TOPIC, new TextEncoder().encode(JSON.stringify({ id })))
}

/** Fetch `id` from random known holders until verified; resolves when held. */
async function obtain(p: Peer, id: string, size: number, layout: TensorMap): Promise<void> {
  const failed = new Set<string>()
  while (!p.store.has(id)) {
    const candidates = [...(p.holders.get(id) ?? [])].filter((h) => h !== p.id && !failed.has(h))
    if (candidates.length === 0) {
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(t)
          p.waiters.delete(done)
          resolve()
        }
        const t = setTimeout(done, 200)
        p.waiters.add(done)
      })
      if (failed.size > 0 && (p.holders.get(id)?.size ?? 0) <= failed.size) failed.clear()
      continue
    }
    const from = candidates[Math.floor(Math.random() * candidates.length)]
    try {
      const bytes = await p.content.fetch(from, 'delta', id, size, AbortSignal.timeout(120_000))
      validateDelta(bytes, { layout })
      p.store.set(id, bytes)
      await announce(p, id).catch(() => {})
    } catch {
      failed.add(from)
    }
  }
}

async function run(job: PropagationJob): Promise<PropagationResult> {
  const n = job.scenario === 'single' ? 2 : job.nodes
  const peers = await startNet(n)
  try {
    const authors = job.scenario === 'all' ? peers : [peers[0]]
    const made = authors.map((_, i) => makePayload(job.payloadBytes, 1000 + i))
    const size = made[0].payload.length
    let best = Infinity
    for (let rep = 0; rep < job.repeats; rep++) {
      // Fresh content ids each repeat: change one header field (the round) and re-encode cheaply.
      const items = made.map((m) => {
        const payload = encodeDelta(m.layout, { codec: 'q8-block', blockSize: 256 }, { round: 1 + rep, baseHash: 'ab'.repeat(32), examples: 1 }).payload
        return { layout: m.layout, payload, id: sha256Hex(payload) }
      })
      for (const p of peers) p.holders.clear()
      const t0 = performance.now()
      if (job.scenario === 'single') {
        peers[0].store.set(items[0].id, items[0].payload)
        const bytes = await peers[1].content.fetch(peers[0].id, 'delta', items[0].id, size, AbortSignal.timeout(120_000))
        validateDelta(bytes, { layout: items[0].layout })
      } else {
        authors.forEach((a, i) => a.store.set(items[i].id, items[i].payload))
        const waits: Promise<void>[] = []
        for (const p of peers) {
          for (const it of items) if (!p.store.has(it.id)) waits.push(obtain(p, it.id, size, it.layout))
        }
        await Promise.all(authors.map((a, i) => announce(a, items[i].id)))
        await Promise.all(waits)
      }
      best = Math.min(best, (performance.now() - t0) / 1000)
      for (const p of peers) p.store.clear()
    }
    return {
      nodes: n, scenario: job.scenario, payloadBytes: size, seconds: best,
      downloaded: peers.map((p) => p.content.stats.bytesIn / job.repeats),
      uploaded: peers.map((p) => p.content.stats.bytesOut / job.repeats),
    }
  } finally {
    await Promise.all(peers.map((p) => Promise.resolve(p.node.stop()).catch(() => {})))
  }
}

childMain(run)
