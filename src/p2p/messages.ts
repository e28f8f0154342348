import { z } from 'zod'
import { PayloadError } from '../util/errors.js'

/**
 * Gossip messages: small JSON objects, validated by schema before anything else reads them.
 * Payloads never travel by gossip (gossipsub drops peers over its frame limit): an announcement
 * names a delta by its sha256 and peers fetch it over the stream protocol.
 */

export const MAX_GOSSIP_BYTES = 64 * 1024
export const MAX_CONTRIBUTORS_PER_ROUND = 256

const hex64 = z.string().regex(/^[0-9a-f]{64}$/)
const peerIdStr = z.string().min(10).max(128).regex(/^[1-9A-HJ-NP-Za-km-z]+$/, 'not a base58 peer id')

const Contribution = z.object({ id: hex64, peer: peerIdStr, examples: z.number().int().nonnegative() }).strict()

/** "I trained on base `base` in round `round` and hold delta `deltaId`; fetch it from me." */
export const AnnounceSchema = z
  .object({
    type: z.literal('announce'),
    v: z.literal(1),
    swarm: hex64,
    round: z.number().int().positive(),
    base: hex64,
    deltaId: hex64,
    size: z.number().int().positive(),
    examples: z.number().int().nonnegative(),
    // Where the announcer can be dialed, so peers not yet connected to it can fetch directly.
    addrs: z.array(z.string().max(256)).max(8),
    loss: z.number().finite().optional(),
  })
  .strict()
export type Announce = z.infer<typeof AnnounceSchema>

/** "For round `round` on `base`, I hold and propose exactly these deltas." */
export const VoteSchema = z
  .object({
    type: z.literal('vote'),
    v: z.literal(1),
    swarm: hex64,
    round: z.number().int().positive(),
    base: hex64,
    deltas: z.array(Contribution).max(MAX_CONTRIBUTORS_PER_ROUND),
  })
  .strict()
export type Vote = z.infer<typeof VoteSchema>

/**
 * "I fused round `round` on `base` from `contributors` deltas into `hash`". The delta list itself
 * is in the lineage record, served over the stream protocol to a node that syncs: gossiping it
 * made every commit O(N) bytes, and the swarm's commit traffic O(N^3).
 */
export const CommitSchema = z
  .object({
    type: z.literal('commit'),
    v: z.literal(1),
    swarm: hex64,
    round: z.number().int().positive(),
    base: hex64,
    hash: hex64,
    rule: z.string().max(64),
    contributors: z.number().int().nonnegative().max(MAX_CONTRIBUTORS_PER_ROUND),
  })
  .strict()
export type Commit = z.infer<typeof CommitSchema>

/** "I hold these deltas of (`round`, `base`), verified; fetch them from me too." Not a vote. */
export const HaveSchema = z
  .object({
    type: z.literal('have'),
    v: z.literal(1),
    swarm: hex64,
    round: z.number().int().positive(),
    base: hex64,
    deltas: z.array(hex64).max(MAX_CONTRIBUTORS_PER_ROUND),
  })
  .strict()
export type Have = z.infer<typeof HaveSchema>

/**
 * "I am a member, at round `round` on `base`, reachable at `addrs`." Repeated while a node is
 * idle, so that members beyond its direct peers know of it (and can dial it) before it speaks.
 */
export const HelloSchema = z
  .object({
    type: z.literal('hello'),
    v: z.literal(1),
    swarm: hex64,
    round: z.number().int().nonnegative(),
    base: hex64,
    addrs: z.array(z.string().max(256)).max(8),
  })
  .strict()
export type Hello = z.infer<typeof HelloSchema>

export const GossipMessageSchema = z.discriminatedUnion('type', [AnnounceSchema, VoteSchema, CommitSchema, HaveSchema, HelloSchema])
export type GossipMessage = z.infer<typeof GossipMessageSchema>

export function encodeMessage(m: GossipMessage): Uint8Array {
  const bytes = Buffer.from(JSON.stringify(m), 'utf8')
  if (bytes.length > MAX_GOSSIP_BYTES) {
    throw new PayloadError(`${m.type} message is ${bytes.length} bytes, over the ${MAX_GOSSIP_BYTES}-byte gossip limit`, 'too-large')
  }
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

/** Parse and validate; throws PayloadError (never anything else) on bad input. */
export function decodeMessage(data: Uint8Array, swarmId: string): GossipMessage {
  if (data.length > MAX_GOSSIP_BYTES) throw new PayloadError(`message of ${data.length} bytes is over the limit`, 'too-large')
  let raw: unknown
  try {
    raw = JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8'))
  } catch {
    throw new PayloadError('message is not valid JSON', 'malformed')
  }
  const r = GossipMessageSchema.safeParse(raw)
  if (!r.success) {
    const i = r.error.issues[0]
    throw new PayloadError(`message fails the schema at ${i?.path.join('.') || '(top)'}: ${i?.message}`, 'schema')
  }
  if (r.data.swarm !== swarmId) throw new PayloadError('message is for another swarm', 'wrong-swarm')
  const ids = 'deltas' in r.data ? r.data.deltas.map((d) => (typeof d === 'string' ? d : d.id)) : []
  for (let i = 1; i < ids.length; i++) {
    if (ids[i - 1] >= ids[i]) throw new PayloadError('delta list is not sorted and unique', 'schema')
  }
  return r.data
}
