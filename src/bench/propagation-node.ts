import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { encodeDelta, validateDelta } from '../codec/index.js'
import type { TensorMap } from '../model/tensors.js'
import { ContentProtocol } from '../p2p/fetch.js'
import { HolderPicker } from '../p2p/holders.js'
import { createSwarmLibp2p, type SwarmLibp2p } from '../p2p/node.js'
import { createLogger, silentLogger } from '../util/log.js'

/**
 * One node of the propagation bench, in its own process (as on its own machine): a real libp2p
 * node (createSwarmLibp2p + ContentProtocol) on TCP loopback. A delta is announced on
 * gossipsub; a node that hears of it fetches it from the least-loaded peer known to hold it
 * (the author, or any node that announced "have"), verifies it (sha256 in the fetch, then the
 * full container check a node runs), keeps it, serves it and announces "have". The bench
 * process drives it over IPC, one command at a time.
 */

export type NodeCommand =
  | { t: 'init'; index: number; payloadBytes: number; listen: string }
  | { t: 'dial'; addrs: string[] }
  | { t: 'subs'; peers: number }
  | { t: 'prepare'; rep: number; authors: number[] }
  | { t: 'go'; expect: number; items: { id: string; author: number; holder: string }[] }
  | { t: 'fetch'; from: string; author: number; rep: number }
  | { t: 'stats' }
  | { t: 'stop' }

export type NodeReply =
  | { t: 'ok' }
  | { t: 'ready'; addr: string; id: string }
  | { t: 'prepared'; bytes: number; id?: string }
  | { t: 'done'; seconds: number }
  | { t: 'stats'; cpuSeconds: number; bytesIn: number; bytesOut: number; served: number; fetched: number }
  | { t: 'error'; message: string }

const PROTOCOL = '/coldfusion-bench/fetch/1.0.0'
const TOPIC = '/coldfusion-bench/have/json'

/** Tensors of about `bytes` bytes as q8-block: 4 tensors of noise, the same on every node for a seed. */
function makeLayout(bytes: number, seed: number): TensorMap {
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
  return layout
}

const encode = (layout: TensorMap, rep: number) =>
  encodeDelta(layout, { codec: 'q8-block', blockSize: 256 }, { round: 1 + rep, baseHash: 'ab'.repeat(32), examples: 1 })

class BenchNode {
  node!: SwarmLibp2p
  id = ''
  content!: ContentProtocol
  picker!: HolderPicker
  index = 0
  payloadBytes = 0
  /** The scenario repeat under way (announcements carry it). */
  rep = -1
  readonly store = new Map<string, Uint8Array>()
  readonly holders = new Map<string, Set<string>>()
  /** Layouts by author index (validation needs names and shapes); payload ids to author. */
  readonly layouts = new Map<number, TensorMap>()
  readonly authorOf = new Map<string, number>()
  private readonly obtaining = new Set<string>()
  own?: { id: string; payload: Uint8Array }
  private waiters = new Set<() => void>()
  private goal?: { expect: number; done: () => void }
  private cpu0 = process.cpuUsage()
  private stats0 = { bytesIn: 0, bytesOut: 0, served: 0, fetched: 0 }

  async init(index: number, payloadBytes: number, listen: string): Promise<NodeReply> {
    this.index = index
    this.payloadBytes = payloadBytes
    this.node = await createSwarmLibp2p({ privateKey: (await generateKeyPair('Ed25519')) as unknown as PrivateKey, listen: [listen], announce: [], mdns: false })
    await this.node.start()
    this.id = this.node.peerId.toString()
    this.picker = new HolderPicker(this.id)
    this.content = new ContentProtocol(this.node, PROTOCOL, async (_kind, id) => this.store.get(id), process.env.CFD_BENCH_DEBUG ? createLogger({ level: 'debug', destination: 2 }) : silentLogger())
    await this.content.start()
    this.node.services.pubsub.subscribe(TOPIC)
    this.node.services.pubsub.addEventListener('message', (evt) => {
      if (evt.detail.topic !== TOPIC || evt.detail.type !== 'signed') return
      let msg: { id: string; author: number; rep: number }
      try {
        msg = JSON.parse(new TextDecoder().decode(evt.detail.data)) as { id: string; author: number; rep: number }
      } catch {
        return
      }
      // A late repeat from the scenario before would start a fetch this one does not count on.
      if (msg.rep !== this.rep) return
      this.heard(msg.id, msg.author, evt.detail.from.toString())
    })
    return { t: 'ready', addr: this.node.getMultiaddrs()[0].toString(), id: this.id }
  }

  private heard(id: string, author: number, from: string): void {
    if (!this.layouts.has(author)) return
    this.authorOf.set(id, author)
    const set = this.holders.get(id) ?? new Set<string>()
    set.add(from)
    this.holders.set(id, set)
    for (const w of this.waiters) w()
    this.waiters.clear()
    if (this.goal) this.obtainAll()
  }

  /** Start fetching every announced payload not held (announcements may come before our 'go'). */
  private obtainAll(): void {
    for (const id of this.authorOf.keys()) {
      if (this.store.has(id) || this.obtaining.has(id)) continue
      this.obtaining.add(id)
      void this.obtain(id).finally(() => this.obtaining.delete(id))
    }
  }

  /** Fetch `id` from the least-loaded known holder until held and verified; then announce it. */
  private async obtain(id: string): Promise<void> {
    const layout = this.layouts.get(this.authorOf.get(id)!)!
    while (!this.store.has(id)) {
      try {
        const { bytes } = await this.picker.fetch(this.content, 'delta', id, () => this.holders.get(id) ?? [], this.payloadBytes * 2, AbortSignal.timeout(120_000), {
          check: (b) => validateDelta(b, { layout }),
          onError: (peer, err) => { if (process.env.CFD_BENCH_DEBUG) process.stderr.write(`node ${this.index} from ${peer.slice(-6)}: ${err.message}\n`) },
        })
        this.store.set(id, bytes)
        await this.announce(id, this.authorOf.get(id)!).catch(() => {})
        this.progress()
      } catch {
        // Every known holder failed: wait for news of another (or retry them shortly).
        await new Promise<void>((resolve) => {
          const done = (): void => {
            clearTimeout(t)
            this.waiters.delete(done)
            resolve()
          }
          const t = setTimeout(done, 200)
          this.waiters.add(done)
        })
      }
    }
  }

  private progress(): void {
    if (this.goal && this.store.size >= this.goal.expect) this.goal.done()
  }

  announce(id: string, author: number): Promise<unknown> {
    return this.node.services.pubsub.publish(TOPIC, new TextEncoder().encode(JSON.stringify({ id, author, rep: this.rep })))
  }

  async handle(c: NodeCommand): Promise<NodeReply> {
    switch (c.t) {
      case 'init':
        return this.init(c.index, c.payloadBytes, c.listen)
      case 'dial':
        for (const a of c.addrs) await dialWithRetry(this.node, a)
        return { t: 'ok' }
      case 'subs': {
        // Every node must see every other as a subscriber before timing starts.
        const deadline = Date.now() + 30_000
        while (this.node.services.pubsub.getSubscribers(TOPIC).length < c.peers) {
          if (Date.now() > deadline) throw new Error(`node ${this.index}: gossip subscriptions did not spread in 30 s`)
          await new Promise((r) => setTimeout(r, 50))
        }
        return { t: 'ok' }
      }
      case 'prepare': {
        this.rep = c.rep
        this.store.clear()
        this.holders.clear()
        this.authorOf.clear()
        this.own = undefined
        for (const a of c.authors) if (!this.layouts.has(a)) this.layouts.set(a, makeLayout(this.payloadBytes, 1000 + a))
        if (c.authors.includes(this.index)) {
          const { payload, deltaId } = encode(this.layouts.get(this.index)!, c.rep)
          this.own = { id: deltaId, payload }
        }
        return { t: 'prepared', bytes: this.own?.payload.length ?? 0, id: this.own?.id }
      }
      case 'go': {
        this.mark()
        const t0 = performance.now()
        const reached = new Promise<void>((resolve) => (this.goal = { expect: c.expect, done: resolve }))
        if (this.own) {
          this.store.set(this.own.id, this.own.payload)
          this.authorOf.set(this.own.id, this.index)
          await this.announce(this.own.id, this.index)
        }
        // The bench also hands every node the announcement directly: a node that lost its
        // connection to an author on this loaded machine must not wait for gossip forever.
        for (const it of c.items) if (it.author !== this.index) this.heard(it.id, it.author, it.holder)
        this.progress()
        this.obtainAll()
        let timer: NodeJS.Timeout | undefined
        // Like the daemon, repeat our announcement until the scenario ends: gossip may lose one.
        const again = setInterval(() => {
          if (this.own) void this.announce(this.own.id, this.index).catch(() => {})
        }, 1000)
        const stuck = (): string => `node ${this.index}: holds ${this.store.size} of ${c.expect} payloads after 300 s; known ${this.authorOf.size}, ` +
          [...this.authorOf.keys()].filter((id) => !this.store.has(id)).map((id) => `${id.slice(0, 8)} holders ${this.holders.get(id)?.size ?? 0} obtaining ${this.obtaining.has(id)}`).join('; ')
        await Promise.race([reached, new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(stuck())), 300_000)))]).finally(() => {
          clearTimeout(timer)
          clearInterval(again)
        })
        return { t: 'done', seconds: (performance.now() - t0) / 1000 }
      }
      case 'fetch': {
        // The reference: one stream moving one payload between two nodes, verified, no gossip.
        const layout = this.layouts.get(c.author)!
        const { deltaId } = encode(layout, c.rep)
        this.mark()
        const t0 = performance.now()
        const bytes = await this.content.fetch(c.from, 'delta', deltaId, this.payloadBytes * 2, AbortSignal.timeout(120_000))
        validateDelta(bytes, { layout })
        return { t: 'done', seconds: (performance.now() - t0) / 1000 }
      }
      case 'stats': {
        const cpu = process.cpuUsage(this.cpu0)
        const s = this.content.stats
        this.goal = undefined
        return {
          t: 'stats', cpuSeconds: (cpu.user + cpu.system) / 1e6,
          bytesIn: s.bytesIn - this.stats0.bytesIn, bytesOut: s.bytesOut - this.stats0.bytesOut,
          served: s.served - this.stats0.served, fetched: s.fetched - this.stats0.fetched,
        }
      }
      case 'stop':
        await Promise.resolve(this.node.stop()).catch(() => {})
        return { t: 'ok' }
    }
  }

  /** Start of a measured interval: CPU time and transfer counters. */
  private mark(): void {
    this.cpu0 = process.cpuUsage()
    this.stats0 = { ...this.content.stats }
  }
}

/**
 * Try a dial again after a failure: a handshake on a loaded machine can stall, and libp2p admits
 * at most 5 inbound connections per second from one address (here every node is 127.0.0.1), so
 * when all nodes dial at once the first node resets the rest. Backing off with jitter spreads them.
 */
async function dialWithRetry(from: SwarmLibp2p, addr: string): Promise<void> {
  const { multiaddr } = await import('@multiformats/multiaddr')
  for (let attempt = 1; ; attempt++) {
    try {
      await from.dial(multiaddr(addr), { signal: AbortSignal.timeout(20_000) })
      return
    } catch (err) {
      if (attempt >= 10) throw err
      await new Promise((r) => setTimeout(r, Math.min(2000, 200 * 2 ** attempt) * (0.5 + Math.random())))
    }
  }
}

if (process.send) {
  const self = new BenchNode()
  // Commands run one at a time, in order: the bench waits for each reply.
  let queue = Promise.resolve()
  process.on('message', (c: NodeCommand) => {
    queue = queue.then(async () => {
      let reply: NodeReply
      try {
        reply = await self.handle(c)
      } catch (err) {
        reply = { t: 'error', message: (err as Error).stack ?? String(err) }
      }
      process.send!(reply)
      if (c.t === 'stop') process.disconnect()
    })
  })
}
