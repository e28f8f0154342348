import { z } from 'zod'
import type { HolderPicker } from '../p2p/holders.js'
import type { ContentProtocol } from '../p2p/fetch.js'
import type { ContentStore } from '../store/content-store.js'
import { ContributionSchema, type Ledger, type LineageRecord } from '../store/ledger.js'
import type { TensorMap } from '../model/tensors.js'
import { PayloadError } from '../util/errors.js'
import type { Logger } from '../util/log.js'
import type { FusionPorts } from './runner.js'

const hex64 = z.string().regex(/^[0-9a-f]{64}$/)

export const LineageRecordSchema = z
  .object({ round: z.number().int().positive(), parent: hex64, hash: hex64, deltas: z.array(ContributionSchema).min(1).max(256), rule: z.string().max(64) })
  .strict()

/** A lineage record as received from a peer: schema-checked and bound to the hash asked for. */
export function parseLineageRecord(bytes: Uint8Array, hash: string): LineageRecord {
  let raw: unknown
  try {
    raw = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'))
  } catch {
    throw new PayloadError(`lineage record for ${hash.slice(0, 12)} is not JSON`, 'malformed')
  }
  const r = LineageRecordSchema.safeParse(raw)
  if (!r.success) throw new PayloadError(`lineage record for ${hash.slice(0, 12)} fails the schema`, 'schema')
  if (r.data.hash !== hash) throw new PayloadError(`asked for the record of ${hash.slice(0, 12)}, got ${r.data.hash.slice(0, 12)}`, 'wrong-record')
  const ids = r.data.deltas.map((d) => d.id)
  for (let i = 1; i < ids.length; i++) if (ids[i - 1] >= ids[i]) throw new PayloadError('lineage record deltas are not sorted and unique', 'schema')
  return r.data
}

/** Longest lineage a node walks back in one sync (a bound on what a peer can make it do). */
const MAX_SYNC_DEPTH = 10_000

export interface SyncDeps {
  ledger: Ledger
  checkpoints: ContentStore
  deltas: ContentStore
  content: ContentProtocol
  /** Picks among the providers, and follows a busy one to the peers relaying the content. */
  holders: HolderPicker
  fusion: FusionPorts
  maxDeltaBytes: number
  rule: string
  log: Logger
}

export interface SyncResult {
  /** Rounds adopted, oldest first. */
  adopted: LineageRecord[]
  /** The common ancestor the walk stopped at. */
  ancestor: string
}

/**
 * Catch up to a base the swarm builds on: walk its lineage records back (fetched from peers) to a
 * base this node already holds, then recompute every round forward from the deltas, check each
 * result against the record's hash, and append it to the ledger. Nothing is taken on trust: a
 * record only counts once its base has been recomputed and matches.
 */
export class LineageSync {
  constructor(private readonly d: SyncDeps) {}

  async syncTo(target: string, providers: string[], signal: AbortSignal): Promise<SyncResult> {
    const known = new Set<string>([this.d.ledger.genesis, ...this.d.ledger.chain().map((e) => e.hash)])
    const records: LineageRecord[] = []
    let h = target
    while (!known.has(h)) {
      if (records.length >= MAX_SYNC_DEPTH) throw new PayloadError(`lineage of ${target.slice(0, 12)} is longer than ${MAX_SYNC_DEPTH} rounds`, 'too-deep')
      const rec = await this.fetchRecord(h, providers, signal)
      records.unshift(rec)
      h = rec.parent
    }
    const ancestor = h
    this.d.log.info({ target: target.slice(0, 12), ancestor: ancestor.slice(0, 12), rounds: records.length }, 'syncing: recomputing the swarm\'s lineage')
    let parentBase: TensorMap | undefined
    for (const rec of records) {
      parentBase ??= this.d.fusion.decodeBase((await this.d.checkpoints.get(rec.parent))!)
      const payloads: { id: string; payload: Uint8Array; examples: number }[] = []
      for (const c of rec.deltas) {
        let bytes = await this.d.deltas.get(c.id)
        if (!bytes) {
          bytes = await this.fetchFrom(c.id, 'delta', [c.peer, ...providers], signal)
          this.d.fusion.checkDelta(bytes, { round: rec.round, baseHash: rec.parent })
          await this.d.deltas.putFetched(bytes, c.id)
        }
        payloads.push({ id: c.id, payload: bytes, examples: c.examples })
      }
      const next = this.d.fusion.fuse(parentBase, payloads, rec.parent)
      const bytes = this.d.fusion.encodeBase(next)
      const hash = await this.d.checkpoints.put(bytes)
      if (hash !== rec.hash) {
        throw new PayloadError(`round ${rec.round}: recomputing the record gives ${hash.slice(0, 12)}, not the claimed ${rec.hash.slice(0, 12)}`, 'lineage-mismatch')
      }
      await this.d.ledger.append({ round: rec.round, parent: rec.parent, hash: rec.hash, deltas: rec.deltas, rule: this.d.rule, kind: 'switch' })
      parentBase = next
    }
    return { adopted: records, ancestor }
  }

  private async fetchRecord(hash: string, providers: string[], signal: AbortSignal): Promise<LineageRecord> {
    const rec = parseLineageRecord(await this.fetchFrom(hash, 'record', providers, signal), hash)
    if (rec.rule !== this.d.rule) throw new PayloadError(`record uses fusion rule ${rec.rule}, the swarm uses ${this.d.rule}`, 'wrong-rule')
    return rec
  }

  private async fetchFrom(id: string, kind: 'delta' | 'record', providers: string[], signal: AbortSignal): Promise<Uint8Array> {
    try {
      const { bytes } = await this.d.holders.fetch(this.d.content, kind, id, () => providers, kind === 'record' ? 1024 * 1024 : this.d.maxDeltaBytes, signal, { attemptMs: 60_000 })
      return bytes
    } catch (err) {
      if (signal.aborted) throw err
      throw new PayloadError(`no peer could provide ${kind} ${id.slice(0, 12)} (${(err as Error).message})`, 'unavailable')
    }
  }
}
