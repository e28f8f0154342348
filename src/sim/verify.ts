import { join } from 'node:path'
import { regenerateGenesis } from '../config/genesis.js'
import type { SwarmDefinition } from '../config/swarm.js'
import { fusionPorts } from '../daemon/ports.js'
import { decodeSafetensors } from '../model/safetensors.js'
import { ContentStore } from '../store/content-store.js'
import type { LedgerEntry } from '../store/ledger.js'
import { sha256Hex } from '../util/hash.js'

/**
 * Recompute a node's lineage outside any daemon: from the seeded round-0 base, fuse each
 * round's recorded deltas (read from the node's delta store) and compare the hash with the
 * ledger's. True only if every round matches and each entry builds on the previous one.
 */
export async function recomputeLineage(def: SwarmDefinition, home: string, ledger: readonly LedgerEntry[]): Promise<boolean> {
  const genesis = regenerateGenesis(def)
  if (!genesis || ledger.length === 0) return false
  const ports = fusionPorts(def, decodeSafetensors(genesis, 'genesis').tensors)
  const deltas = new ContentStore(join(home, 'deltas'), 'cfd')
  let base = ports.decodeBase(genesis)
  let hash = sha256Hex(genesis)
  for (const e of ledger) {
    if (e.parent !== hash) return false
    const payloads = []
    for (const c of e.deltas) {
      const payload = await deltas.get(c.id)
      if (!payload) return false
      payloads.push({ id: c.id, payload, examples: c.examples })
    }
    base = ports.fuse(base, payloads)
    hash = sha256Hex(ports.encodeBase(base))
    if (hash !== e.hash) return false
  }
  return true
}
