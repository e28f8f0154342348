import type { ContentStore } from '../store/content-store.js'
import type { Ledger } from '../store/ledger.js'
import type { Logger } from '../util/log.js'
import type { FusionPorts } from './runner.js'

/**
 * At start, make sure the checkpoint of every base on this node's chain is present and intact.
 * A missing or damaged one (a disk error, a crash during a copy) is rebuilt from its parent and
 * the round's deltas, which the node keeps, and checked against the ledger's hash: the node
 * resumes from verified state or stops with a clear error, never from a corrupt base.
 */
export async function repairCheckpoints(ledger: Ledger, checkpoints: ContentStore, deltas: ContentStore, fusion: FusionPorts, log: Logger): Promise<number> {
  let repaired = 0
  for (const e of ledger.chain()) {
    const ok = await checkpoints.get(e.hash).then((b) => b !== undefined, () => false)
    if (ok) continue
    await checkpoints.remove(e.hash)
    const parent = await checkpoints.get(e.parent)
    if (!parent) throw new Error(`checkpoint ${e.parent} (parent of round ${e.round}) is missing too; cannot rebuild round ${e.round}`)
    const payloads: { id: string; payload: Uint8Array; examples: number }[] = []
    for (const c of e.deltas) {
      const p = await deltas.get(c.id)
      if (!p) throw new Error(`cannot rebuild round ${e.round}: delta ${c.id} is not in the store`)
      payloads.push({ id: c.id, payload: p, examples: c.examples })
    }
    const hash = await checkpoints.put(fusion.encodeBase(fusion.fuse(fusion.decodeBase(parent), payloads, e.parent)))
    if (hash !== e.hash) throw new Error(`rebuilding round ${e.round} gave ${hash.slice(0, 12)}, not the ledger's ${e.hash.slice(0, 12)}`)
    log.warn({ round: e.round, hash: e.hash.slice(0, 12) }, 'rebuilt a missing or damaged checkpoint from its parent and deltas')
    repaired++
  }
  return repaired
}
