/**
 * JSON with object keys sorted at every level and no whitespace: the same value gives the same
 * bytes on every machine, so it can be hashed (swarm ids, ledger checksums).
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value))
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys)
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {}
    for (const k of Object.keys(v as object).sort()) {
      const x = (v as Record<string, unknown>)[k]
      if (x !== undefined) out[k] = sortKeys(x)
    }
    return out
  }
  if (typeof v === 'number' && !Number.isFinite(v)) throw new Error('canonicalJson: non-finite number')
  return v
}
