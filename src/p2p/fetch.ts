import { createHash } from 'node:crypto'
import { setTimeout as delay } from 'node:timers/promises'
import * as lp from 'it-length-prefixed'
import { Uint8ArrayList } from 'uint8arraylist'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { z } from 'zod'
import type { SwarmLibp2p } from './node.js'
import { PayloadError } from '../util/errors.js'
import type { Logger } from '../util/log.js'
import type { TransferMeter } from '../api/metrics.js'
import { Incoming } from './relay.js'

/**
 * The content protocol: "announce, then fetch". A request names content by sha256 (a delta
 * payload or a checkpoint); the response is a small length-prefixed header, then exactly `size`
 * raw bytes (no per-chunk framing: yamux and noise already frame them, and each extra layer
 * costs a copy). The client checks the announced size against its limit before reading, and the
 * sha256 as the bytes arrive: content from any peer is as good as from its author.
 */

/** Deltas and checkpoints are named by the sha256 of their bytes; a record by the base it produced. */
export type ContentKind = 'delta' | 'checkpoint' | 'record'
export type ContentSource = (kind: ContentKind, id: string) => Promise<Uint8Array | undefined>

/** An upload slot is given back this long after the last byte was written, even if the client never says it has them. */
const SLOT_HOLD_MAX_MS = 60_000

/** How long a relay asked for a delta waits for its own transfer's header before saying it does not have it. */
const RELAY_HEADER_WAIT_MS = 2000

/** How long a received delta is still relayed from memory after it completed (the caller stores it meanwhile). */
const RELAY_AFTER_MS = 5000

/**
 * Each write is one yamux frame. Fewer, larger frames mean less per-frame work, but a receiver
 * gets a frame's bytes only once the whole frame is in, and a relay passes them on only then:
 * each hop of a relay chain lags its upstream by one frame. So a payload goes out in about 32
 * frames, of 64 KiB to 1 MiB: a hop costs a thirty-second of a transfer, and large payloads
 * keep large frames.
 */
const frameBytes = (size: number): number => Math.min(1024 * 1024, Math.max(64 * 1024, 2 ** Math.ceil(Math.log2(Math.max(1, size / 32)))))
const MAX_HEADER = 1024

const RequestSchema = z.object({ kind: z.enum(['delta', 'checkpoint', 'record']), id: z.string().regex(/^[0-9a-f]{64}$/) }).strict()
const HeaderSchema = z.discriminatedUnion('status', [
  z.object({ status: z.literal('ok'), size: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER) }),
  z.object({ status: z.literal('not-found') }),
  z.object({ status: z.literal('error'), message: z.string() }),
  // Every upload slot for this content is taken: try the peers it is being sent to (they relay it).
  z.object({ status: z.literal('busy'), peers: z.array(z.string().max(128)).max(16) }),
])

/** The holder is sending this content to as many peers as it will at once; `peers` are receiving it and relay it. */
export class BusyError extends PayloadError {
  constructor(message: string, readonly peers: string[]) {
    super(message, 'busy')
  }
}

export interface TransferStats {
  bytesIn: number
  bytesOut: number
  served: number
  fetched: number
}

export class ContentProtocol {
  readonly stats: TransferStats = { bytesIn: 0, bytesOut: 0, served: 0, fetched: 0 }
  /** Counts bytes by content kind and times fetches, when set (the daemon's metrics). */
  meter?: TransferMeter
  /**
   * Addresses known for a peer outside the peer store (from its hello or announcement): a far
   * holder this node has never been connected to is dialed through them.
   */
  addressesOf?: (peer: string) => string[] | undefined
  /** Called after a fetch that had to open a connection of its own (the keeper may close it again). */
  fetchedFar?: (peer: string) => void
  /**
   * Peers one delta is sent to at once by this node; more are told 'busy' and pointed at those
   * receiving it, who relay it as it arrives. One: each uplink carries a delta once, so a delta
   * spreads down a chain at one link's speed instead of through the author's uplink N-1 times.
   */
  uploadSlots = 1
  /** Deltas being received now (relayed to fetchers as they arrive), and who each delta is being sent to. */
  private readonly incoming = new Map<string, Incoming>()
  private readonly sending = new Map<string, Set<string>>()

  constructor(
    private readonly node: SwarmLibp2p,
    private readonly protocol: string,
    private readonly source: ContentSource,
    private readonly log: Logger,
    private readonly maxRequestsPerWindow = 256,
    private readonly windowMs = 10_000,
  ) {}

  async start(): Promise<void> {
    await this.node.handle(
      this.protocol,
      ({ stream, connection }) => {
        const peer = connection.remotePeer.toString()
        if (!this.admit(peer)) {
          this.log.warn({ peer }, 'fetch rate limit exceeded; refusing the request')
          stream.abort(new Error('rate limited'))
          return
        }
        // A write to a stream whose connection closed can wait forever (aborting the stream does
        // not end it), and would hold its upload slot: serving stops when the connection closes.
        let gone!: () => void
        const closed = new Promise<void>((resolve) => (gone = resolve))
        const onClose = (evt: CustomEvent<{ id: string }>): void => {
          if (evt.detail.id !== connection.id) return
          stream.abort(new Error('connection closed'))
          gone()
        }
        this.node.addEventListener('connection:close', onClose)
        void this.serve(stream, peer, closed).catch((err) => {
          this.log.debug({ err: (err as Error).message }, 'serving a fetch failed')
          stream.abort(err as Error)
        }).finally(() => this.node.removeEventListener('connection:close', onClose))
      },
      { maxInboundStreams: 32, maxOutboundStreams: 64 },
    )
  }

  async stop(): Promise<void> {
    await this.node.unhandle(this.protocol)
  }

  private readonly windows = new Map<string, { start: number; count: number }>()

  /** At most `maxRequestsPerWindow` requests per peer per window: a peer cannot make us serve without bound. */
  private admit(peer: string): boolean {
    const now = Date.now()
    let w = this.windows.get(peer)
    if (!w || now - w.start > this.windowMs) {
      w = { start: now, count: 0 }
      this.windows.set(peer, w)
      if (this.windows.size > 10_000) this.windows.clear()
    }
    return ++w.count <= this.maxRequestsPerWindow
  }

  private async serve(stream: Parameters<Parameters<SwarmLibp2p['handle']>[1]>[0]['stream'], peer: string, closed: Promise<void>): Promise<void> {
    // One request per stream. The client keeps its side open until it has the whole response,
    // so its close says the bytes arrived (a write here only says they were queued): an upload
    // slot is held until then. Our read side stays open meanwhile: closing it while the response
    // is being written can end the stream early.
    const frames = lp.decode(stream.source, { maxDataLength: MAX_HEADER })[Symbol.asyncIterator]()
    const first = await frames.next()
    if (first.done) return stream.close()
    const frame = first.value
    const received = (async () => {
      while (!(await frames.next()).done) {
        // A client sends one request; anything more is ignored until it closes.
      }
    })().catch(() => {})
    let req: z.infer<typeof RequestSchema>
    try {
      req = parseRequest(frame.subarray())
    } catch {
      return stream.sink([lp.encode.single(header({ status: 'error', message: 'malformed request' }))])
    }
    const bytes = await this.source(req.kind, req.id).catch(() => undefined)
    const relay = bytes || req.kind !== 'delta' ? undefined : this.incoming.get(req.id)
    // A relay asked before its own response header came waits for it (the asker was pointed
    // here), but not long: two relays waiting on each other must not stall until a timeout.
    const relaySize = relay ? await Promise.race([relay.size.catch(() => undefined), delay(RELAY_HEADER_WAIT_MS, undefined, { ref: false })]) : undefined
    if (!bytes && relaySize === undefined) return stream.sink([lp.encode.single(header({ status: 'not-found' }))])
    const to = req.kind === 'delta' ? (this.sending.get(req.id) ?? new Set<string>()) : undefined
    if (to && to.size >= this.uploadSlots) return stream.sink([lp.encode.single(header({ status: 'busy', peers: [...to].slice(0, 16) }))])
    const size = bytes ? bytes.length : relaySize!
    to?.add(peer)
    if (to) this.sending.set(req.id, to)
    try {
      const sent = stream.sink((async function* () {
        yield lp.encode.single(header({ status: 'ok', size }))
        const frame = frameBytes(size)
        if (relay) yield* relay.bytes(frame)
        else for (let i = 0; i < size; i += frame) yield bytes!.subarray(i, Math.min(size, i + frame))
      })())
      sent.catch(() => {})
      await Promise.race([sent, closed.then(() => Promise.reject(new Error(`connection to ${peer} closed while sending`)))])
      this.stats.bytesOut += size
      this.stats.served++
      this.meter?.sent(req.kind, size)
      const giveUp = new AbortController()
      await Promise.race([received, closed, delay(SLOT_HOLD_MAX_MS, undefined, { signal: giveUp.signal, ref: false }).catch(() => {})])
      giveUp.abort()
    } finally {
      to?.delete(peer)
      if (to?.size === 0) this.sending.delete(req.id)
    }
  }

  /** The peers this node is sending delta `id` to right now. */
  uploadsOf(id: string): string[] {
    return [...(this.sending.get(id) ?? [])]
  }

  /**
   * Offer a delta being received to other fetchers (one transfer per delta is relayed). It stays
   * offered for a few seconds after it completes, until the caller has stored it; a failed
   * transfer is withdrawn at once.
   */
  private relay(id: string): Incoming | undefined {
    if (this.incoming.has(id)) return undefined
    const inc = new Incoming()
    this.incoming.set(id, inc)
    const forget = (): void => {
      if (this.incoming.get(id) === inc) this.incoming.delete(id)
    }
    inc.settled.then(() => setTimeout(forget, RELAY_AFTER_MS).unref(), forget)
    return inc
  }

  /** Fetch content `id` from `peer`; resolves to verified bytes, or throws. */
  async fetch(peer: string, kind: ContentKind, id: string, maxBytes: number, signal: AbortSignal): Promise<Uint8Array> {
    const started = performance.now()
    let ok = false
    const target = peerIdFromString(peer)
    const far = this.node.getConnections(target).length === 0
    const addrs = far ? this.addressesOf?.(peer) : undefined
    const relay = kind === 'delta' ? this.relay(id) : undefined
    let stream
    try {
      stream = await this.node.dialProtocol(addrs?.length ? addrs.map((a) => multiaddr(a)) : target, this.protocol, { signal })
    } catch (err) {
      relay?.fail(err as Error)
      throw err
    }
    // A stalled peer must not hold the fetch past its deadline.
    const onAbort = (): void => stream.abort(new PayloadError(`fetch of ${kind} ${id.slice(0, 12)} from ${peer} aborted`, 'truncated'))
    signal.addEventListener('abort', onAbort, { once: true })
    // Our side stays open until the response is complete: the server learns from our close that it arrived.
    let done!: () => void
    const complete = new Promise<void>((resolve) => (done = resolve))
    const req = new TextEncoder().encode(JSON.stringify({ kind, id }))
    const sending = stream.sink((async function* () {
      yield lp.encode.single(req)
      await complete
    })())
    sending.catch(() => {})
    try {
      const bytes = await readResponse(stream.source, peer, kind, id, maxBytes, relay)
      relay?.finish()
      this.stats.bytesIn += bytes.length
      this.stats.fetched++
      this.meter?.received(kind, bytes.length)
      ok = true
      return bytes
    } catch (err) {
      relay?.fail(err as Error)
      throw err
    } finally {
      done()
      signal.removeEventListener('abort', onAbort)
      this.meter?.fetched(kind, (performance.now() - started) / 1000, ok)
      await stream.close().catch(() => stream.abort(new Error('closed')))
      if (far) this.fetchedFar?.(peer)
    }
  }
}

/**
 * Read a response: the header, then exactly `size` bytes copied once into one buffer and hashed
 * as they arrive. Throws PayloadError on a bad header, a size over `maxBytes`, extra bytes, a
 * short stream, or (except for lineage records, checked by recomputation) a sha256 mismatch.
 * With `relay`, the buffer is offered for relaying once the size is known, and its progress told
 * (the caller tells it how the transfer ended).
 */
async function readResponse(source: AsyncIterable<Uint8ArrayList | Uint8Array>, peer: string, kind: ContentKind, id: string, maxBytes: number,
  relay?: Incoming): Promise<Uint8Array> {
  const head = new Uint8ArrayList()
  const hash = kind === 'record' ? undefined : createHash('sha256')
  let size = -1
  let received = 0
  let out: Uint8Array | undefined
  for await (const chunk of source) {
    let body: Iterable<Uint8Array> = chunk instanceof Uint8Array ? [chunk] : chunk
    if (size < 0) {
      head.append(chunk)
      const h = takeHeader(head)
      if (!h) continue
      if (h.status === 'not-found') throw new PayloadError(`peer ${peer} does not have ${kind} ${id.slice(0, 12)}`, 'not-found')
      if (h.status === 'error') throw new PayloadError(`peer ${peer}: ${h.message}`, 'remote-error')
      if (h.status === 'busy') throw new BusyError(`peer ${peer} is sending ${kind} ${id.slice(0, 12)} to as many peers as it will at once`, h.peers)
      if (h.size > maxBytes) throw new PayloadError(`${kind} ${id.slice(0, 12)} is ${h.size} bytes, over the ${maxBytes}-byte limit`, 'too-large')
      size = h.size
      out = new Uint8Array(size)
      relay?.start(size, out)
      body = head
    }
    for (const buf of body) {
      if (received + buf.length > size) throw new PayloadError(`peer ${peer} sent more than the announced ${size} bytes`, 'too-large')
      out!.set(buf, received)
      hash?.update(buf)
      received += buf.length
    }
    relay?.grew(received)
    if (received === size) break
  }
  if (size < 0 || received !== size) throw new PayloadError(`transfer of ${kind} ${id.slice(0, 12)} from ${peer} ended after ${received} of ${size} bytes`, 'truncated')
  const actual = hash?.digest('hex')
  if (actual !== undefined && actual !== id) throw new PayloadError(`${kind} from ${peer} has sha256 ${actual.slice(0, 12)}, expected ${id.slice(0, 12)}`, 'hash-mismatch')
  return out!
}

/** The header from the front of `buf` once complete (consuming it), else undefined. */
function takeHeader(buf: Uint8ArrayList): z.infer<typeof HeaderSchema> | undefined {
  let len = 0
  let shift = 0
  for (let i = 0; ; i++) {
    if (i >= buf.length) return undefined
    if (i >= 2) throw new PayloadError('fetch response header is too long', 'malformed')
    const b = buf.get(i)
    len |= (b & 0x7f) << shift
    shift += 7
    if (b < 0x80) {
      if (len > MAX_HEADER) throw new PayloadError('fetch response header is too long', 'malformed')
      if (buf.length < i + 1 + len) return undefined
      const h = parseHeader(buf.subarray(i + 1, i + 1 + len))
      buf.consume(i + 1 + len)
      return h
    }
  }
}

/** Parse a request frame (from an untrusted peer); throws PayloadError. */
export function parseRequest(frame: Uint8Array): z.infer<typeof RequestSchema> {
  try {
    return RequestSchema.parse(JSON.parse(new TextDecoder().decode(frame)))
  } catch {
    throw new PayloadError('malformed fetch request', 'malformed')
  }
}

/** Parse a response header frame (from an untrusted peer); throws PayloadError. */
export function parseHeader(frame: Uint8Array): z.infer<typeof HeaderSchema> {
  let raw: unknown
  try {
    raw = JSON.parse(new TextDecoder().decode(frame))
  } catch {
    throw new PayloadError('fetch response header is not JSON', 'malformed')
  }
  const h = HeaderSchema.safeParse(raw)
  if (!h.success) throw new PayloadError('malformed fetch response header', 'malformed')
  return h.data
}

function header(h: z.infer<typeof HeaderSchema>): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(h))
}
