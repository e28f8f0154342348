import { createHash } from 'node:crypto'
import * as lp from 'it-length-prefixed'
import { Uint8ArrayList } from 'uint8arraylist'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { z } from 'zod'
import type { SwarmLibp2p } from './node.js'
import { PayloadError } from '../util/errors.js'
import type { Logger } from '../util/log.js'
import type { TransferMeter } from '../api/metrics.js'

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

/** Large writes: yamux splits them into its own frames; fewer, larger chunks mean less per-chunk work. */
const CHUNK = 1024 * 1024
const MAX_HEADER = 1024

const RequestSchema = z.object({ kind: z.enum(['delta', 'checkpoint', 'record']), id: z.string().regex(/^[0-9a-f]{64}$/) }).strict()
const HeaderSchema = z.discriminatedUnion('status', [
  z.object({ status: z.literal('ok'), size: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER) }),
  z.object({ status: z.literal('not-found') }),
  z.object({ status: z.literal('error'), message: z.string() }),
])

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
        void this.serve(stream).catch((err) => {
          this.log.debug({ err: (err as Error).message }, 'serving a fetch failed')
          stream.abort(err as Error)
        })
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

  private async serve(stream: Parameters<Parameters<SwarmLibp2p['handle']>[1]>[0]['stream']): Promise<void> {
    // One request per stream. Read until the client closes its side rather than stopping at the
    // first frame: closing our read side while the response is still being written can end the
    // stream early (the client then sees the header and no data).
    let frame: Uint8ArrayList | undefined
    for await (const f of lp.decode(stream.source, { maxDataLength: MAX_HEADER })) frame ??= f
    if (!frame) return stream.close()
    let req: z.infer<typeof RequestSchema>
    try {
      req = parseRequest(frame.subarray())
    } catch {
      return stream.sink([lp.encode.single(header({ status: 'error', message: 'malformed request' }))])
    }
    const bytes = await this.source(req.kind, req.id).catch(() => undefined)
    if (!bytes) return stream.sink([lp.encode.single(header({ status: 'not-found' }))])
    await stream.sink((function* () {
      yield lp.encode.single(header({ status: 'ok', size: bytes.length }))
      for (let i = 0; i < bytes.length; i += CHUNK) yield bytes.subarray(i, Math.min(bytes.length, i + CHUNK))
    })())
    this.stats.bytesOut += bytes.length
    this.stats.served++
    this.meter?.sent(req.kind, bytes.length)
  }

  /** Fetch content `id` from `peer`; resolves to verified bytes, or throws. */
  async fetch(peer: string, kind: ContentKind, id: string, maxBytes: number, signal: AbortSignal): Promise<Uint8Array> {
    const started = performance.now()
    let ok = false
    const target = peerIdFromString(peer)
    const far = this.node.getConnections(target).length === 0
    const addrs = far ? this.addressesOf?.(peer) : undefined
    const stream = await this.node.dialProtocol(addrs?.length ? addrs.map((a) => multiaddr(a)) : target, this.protocol, { signal })
    // A stalled peer must not hold the fetch past its deadline.
    const onAbort = (): void => stream.abort(new PayloadError(`fetch of ${kind} ${id.slice(0, 12)} from ${peer} aborted`, 'truncated'))
    signal.addEventListener('abort', onAbort, { once: true })
    try {
      const req = new TextEncoder().encode(JSON.stringify({ kind, id }))
      await stream.sink([lp.encode.single(req)])
      const bytes = await readResponse(stream.source, peer, kind, id, maxBytes)
      this.stats.bytesIn += bytes.length
      this.stats.fetched++
      this.meter?.received(kind, bytes.length)
      ok = true
      return bytes
    } finally {
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
 */
async function readResponse(source: AsyncIterable<Uint8ArrayList | Uint8Array>, peer: string, kind: ContentKind, id: string, maxBytes: number): Promise<Uint8Array> {
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
      if (h.size > maxBytes) throw new PayloadError(`${kind} ${id.slice(0, 12)} is ${h.size} bytes, over the ${maxBytes}-byte limit`, 'too-large')
      size = h.size
      out = new Uint8Array(size)
      body = head
    }
    for (const buf of body) {
      if (received + buf.length > size) throw new PayloadError(`peer ${peer} sent more than the announced ${size} bytes`, 'too-large')
      out!.set(buf, received)
      hash?.update(buf)
      received += buf.length
    }
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
