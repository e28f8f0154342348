import { pipe } from 'it-pipe'
import * as lp from 'it-length-prefixed'
import type { Uint8ArrayList } from 'uint8arraylist'
import { peerIdFromString } from '@libp2p/peer-id'
import { z } from 'zod'
import type { SwarmLibp2p } from './node.js'
import { sha256Hex } from '../util/hash.js'
import { PayloadError } from '../util/errors.js'
import type { Logger } from '../util/log.js'
import type { TransferMeter } from '../api/metrics.js'

/**
 * The content protocol: "announce, then fetch". A request names content by sha256 (a delta
 * payload or a checkpoint); the response is a small header frame then data frames. The client
 * checks the announced size against its limit before reading, and the sha256 after: content
 * from any peer is as good as from its author.
 */

/** Deltas and checkpoints are named by the sha256 of their bytes; a record by the base it produced. */
export type ContentKind = 'delta' | 'checkpoint' | 'record'
export type ContentSource = (kind: ContentKind, id: string) => Promise<Uint8Array | undefined>

const CHUNK = 256 * 1024
const MAX_FRAME = 1024 * 1024

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
    const self = this
    await pipe(
      stream,
      (source) => lp.decode(source, { maxDataLength: 1024 }),
      async function* (requests) {
        for await (const frame of requests) {
          let req: z.infer<typeof RequestSchema>
          try {
            req = parseRequest(frame.subarray())
          } catch {
            yield header({ status: 'error', message: 'malformed request' })
            return
          }
          const bytes = await self.source(req.kind, req.id).catch(() => undefined)
          if (!bytes) {
            yield header({ status: 'not-found' })
            return
          }
          yield header({ status: 'ok', size: bytes.length })
          for (let i = 0; i < bytes.length; i += CHUNK) yield bytes.subarray(i, Math.min(bytes.length, i + CHUNK))
          self.stats.bytesOut += bytes.length
          self.stats.served++
          self.meter?.sent(req.kind, bytes.length)
          return
        }
      },
      (source) => lp.encode(source),
      stream,
    )
  }

  /** Fetch content `id` from `peer`; resolves to verified bytes, or throws. */
  async fetch(peer: string, kind: ContentKind, id: string, maxBytes: number, signal: AbortSignal): Promise<Uint8Array> {
    const started = performance.now()
    let ok = false
    const stream = await this.node.dialProtocol(peerIdFromString(peer), this.protocol, { signal })
    try {
      const req = new TextEncoder().encode(JSON.stringify({ kind, id }))
      const bytes = await pipe(
        [req],
        (source) => lp.encode(source),
        stream,
        (source) => lp.decode(source, { maxDataLength: MAX_FRAME }),
        async (frames: AsyncIterable<Uint8ArrayList>) => {
          let size = -1
          let received = 0
          let out: Uint8Array | undefined
          for await (const frame of frames) {
            if (size < 0) {
              const h = { data: parseHeader(frame.subarray()) }
              if (h.data.status === 'not-found') throw new PayloadError(`peer ${peer} does not have ${kind} ${id.slice(0, 12)}`, 'not-found')
              if (h.data.status === 'error') throw new PayloadError(`peer ${peer}: ${h.data.message}`, 'remote-error')
              if (h.data.size > maxBytes) throw new PayloadError(`${kind} ${id.slice(0, 12)} is ${h.data.size} bytes, over the ${maxBytes}-byte limit`, 'too-large')
              size = h.data.size
              out = new Uint8Array(size)
              continue
            }
            if (received + frame.length > size) throw new PayloadError(`peer ${peer} sent more than the announced ${size} bytes`, 'too-large')
            out!.set(frame.subarray(), received)
            received += frame.length
            if (received === size) break
          }
          if (size < 0 || received !== size) throw new PayloadError(`transfer of ${kind} ${id.slice(0, 12)} from ${peer} ended after ${received} of ${size} bytes`, 'truncated')
          return out!
        },
      )
      const actual = sha256Hex(bytes)
      // A lineage record is checked by recomputing the base it names, not by its own hash.
      if (kind !== 'record' && actual !== id) throw new PayloadError(`${kind} from ${peer} has sha256 ${actual.slice(0, 12)}, expected ${id.slice(0, 12)}`, 'hash-mismatch')
      this.stats.bytesIn += bytes.length
      this.stats.fetched++
      this.meter?.received(kind, bytes.length)
      ok = true
      return bytes
    } finally {
      this.meter?.fetched(kind, (performance.now() - started) / 1000, ok)
      await stream.close().catch(() => stream.abort(new Error('closed')))
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
