import { readFile } from 'node:fs/promises'
import { z } from 'zod'
import { appendLineDurable, writeFileAtomic } from '../util/atomic.js'
import { canonicalJson } from '../util/canonical-json.js'
import { sha256Hex } from '../util/hash.js'
import { UserError } from '../util/errors.js'
import type { Logger } from '../util/log.js'

/**
 * The append-only record of rounds: (round, parent base, sorted contributing deltas, new base).
 * Anyone holding the parent and the deltas can recompute the new base and so verify it.
 * Each line carries a checksum of its own content: a line torn by a crash is detected and
 * dropped at load, never used.
 */

const hex64 = z.string().regex(/^[0-9a-f]{64}$/)

export const ContributionSchema = z.object({
  id: hex64,
  peer: z.string().min(1).max(128),
  examples: z.number().int().nonnegative(),
})
export type Contribution = z.infer<typeof ContributionSchema>

export const LocalMetricsSchema = z
  .object({
    evalBefore: z.number().optional(),
    evalLocal: z.number().optional(),
    evalAfter: z.number().optional(),
    trainLoss: z.number().optional(),
    trainSeconds: z.number().optional(),
    contributed: z.boolean().optional(),
  })
  .strict()
export type LocalMetrics = z.infer<typeof LocalMetricsSchema>

export const LedgerEntrySchema = z
  .object({
    round: z.number().int().positive(),
    parent: hex64,
    hash: hex64,
    deltas: z.array(ContributionSchema),
    rule: z.string(),
    // 'switch': adopted by fork choice, superseding this node's earlier entry for the same round.
    kind: z.enum(['commit', 'switch']),
    at: z.string(),
    // This node's own view (eval metrics): not part of the lineage, not compared between nodes.
    local: LocalMetricsSchema.optional(),
    sum: z.string(),
  })
  .strict()
export type LedgerEntry = z.infer<typeof LedgerEntrySchema>

/** The part of an entry every honest node agrees on. */
export interface LineageRecord {
  round: number
  parent: string
  hash: string
  deltas: Contribution[]
  rule: string
}

function checksum(e: Omit<LedgerEntry, 'sum'>): string {
  return sha256Hex(Buffer.from(canonicalJson(e), 'utf8')).slice(0, 16)
}

export function lineageOf(e: LineageRecord): LineageRecord {
  return { round: e.round, parent: e.parent, hash: e.hash, deltas: e.deltas, rule: e.rule }
}

export class Ledger {
  private entries: LedgerEntry[] = []

  private constructor(readonly path: string, readonly genesis: string) {}

  /** Load (or start) the ledger; a torn last line is dropped with a warning, other damage is an error. */
  static async open(path: string, genesisHash: string, log?: Logger): Promise<Ledger> {
    const ledger = new Ledger(path, genesisHash)
    let text = ''
    try {
      text = await readFile(path, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
      return ledger
    }
    const lines = text.split('\n')
    const good: string[] = []
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]
      if (line.trim() === '') continue
      const isLast = lines.slice(i + 1).every((l) => l.trim() === '')
      const entry = parseLine(line)
      if (typeof entry === 'string') {
        if (isLast) {
          log?.warn({ file: path, line: i + 1, problem: entry }, 'dropping a torn last ledger line (interrupted write)')
          await writeFileAtomic(path, good.map((l) => l + '\n').join(''))
          break
        }
        throw new UserError(`${path}:${i + 1}: ledger line is damaged (${entry}); restore the file from a backup, or move it away to resync from the swarm`)
      }
      ledger.entries.push(entry)
      good.push(line)
    }
    return ledger
  }

  all(): readonly LedgerEntry[] {
    return this.entries
  }

  /** The entry this node currently builds on (the last one), if any. */
  head(): LedgerEntry | undefined {
    return this.entries[this.entries.length - 1]
  }

  headHash(): string {
    return this.head()?.hash ?? this.genesis
  }

  headRound(): number {
    return this.head()?.round ?? 0
  }

  /** The current chain from genesis: switch entries replace the earlier entries they supersede. */
  chain(): LedgerEntry[] {
    const out: LedgerEntry[] = []
    let want = this.headHash()
    for (let i = this.entries.length - 1; i >= 0 && want !== this.genesis; i--) {
      const e = this.entries[i]
      if (e.hash === want) {
        out.push(e)
        want = e.parent
      }
    }
    return out.reverse()
  }

  /** The lineage record that produced `hash`, for peers who ask to verify a base. */
  recordFor(hash: string): LineageRecord | undefined {
    for (let i = this.entries.length - 1; i >= 0; i--) if (this.entries[i].hash === hash) return lineageOf(this.entries[i])
    return undefined
  }

  async append(e: Omit<LedgerEntry, 'sum' | 'at'> & { at?: string }): Promise<LedgerEntry> {
    const body = { ...e, at: e.at ?? new Date().toISOString() }
    const entry: LedgerEntry = { ...body, sum: checksum(body) }
    LedgerEntrySchema.parse(entry)
    await appendLineDurable(this.path, JSON.stringify(entry))
    this.entries.push(entry)
    return entry
  }
}

function parseLine(line: string): LedgerEntry | string {
  let raw: unknown
  try {
    raw = JSON.parse(line)
  } catch {
    return 'not valid JSON'
  }
  const r = LedgerEntrySchema.safeParse(raw)
  if (!r.success) return `schema: ${r.error.issues[0]?.path.join('.')} ${r.error.issues[0]?.message}`
  const { sum, ...body } = r.data
  if (checksum(body) !== sum) return 'checksum mismatch'
  return r.data
}
