import type { FusionParams } from './types.js'

/** Shared parameter checks of the merging rules (task-arithmetic, ties, dare). */
export function checkKeys(rule: string, params: FusionParams, allowed: readonly string[]): void {
  for (const k of Object.keys(params)) {
    if (!allowed.includes(k)) throw new RangeError(`fusion rule ${rule} takes ${allowed.join(', ')}, got ${k}`)
  }
}

/** A number param in [min, max] (max inclusive unless `maxOpen`), or its default. */
export function numberParam(rule: string, params: FusionParams, key: string, def: number, min: number, max: number, maxOpen = false): number {
  const v = params[key] ?? def
  const ok = typeof v === 'number' && Number.isFinite(v) && v >= min && (maxOpen ? v < max : v <= max)
  if (!ok) throw new RangeError(`fusion rule ${rule}: ${key} must be a number in [${min}, ${max}${maxOpen ? ')' : ']'}, got ${JSON.stringify(v)}`)
  return v as number
}
