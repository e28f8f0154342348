import { createHash } from 'node:crypto'
import { numel, sortedNames, type TensorMap } from '../model/tensors.js'
import { PayloadError } from '../util/errors.js'
import { isHex64, sha256Hex } from '../util/hash.js'
import { openDelta } from '../codec/index.js'
import { hashTensors } from './hash.js'
import { applyNormBound, type NormBound } from './norm-bound.js'
import { fusionRuleIds, getFusionRule } from './registry.js'
import type { FusionContext, FusionDelta, FusionParams } from './types.js'

/** A delta as the round hands it over: its id (sha256 of the payload), the bytes, its example count. */
export interface DeltaInput {
  id: string
  payload: Uint8Array
  examples: number
}

export interface FuseOptions {
  /** Fusion rule id (default 'mean'). */
  rule?: string
  params?: FusionParams
  /** Expected round of every delta; default: the deltas must agree among themselves. */
  round?: number
  /** Hash of `base`; computed with hashTensors when omitted. Every delta must be bound to it. */
  baseHash?: string
  /** Per-payload size limit. */
  maxBytes?: number
  /** Bound on each delta's L2 norm, applied before the rule (clip or reject). */
  normBound?: NormBound
}

/** A delta that cannot be fused; `deltaId` says which, so the caller can drop it and retry. */
export class DeltaRejectedError extends PayloadError {
  override name = 'DeltaRejectedError'
  constructor(message: string, reason: string, readonly deltaId: string) {
    super(message, reason)
  }
}

/**
 * Fuse one round: B_{r+1} = rule(B_r, {deltas}). The result depends only on the base, the SET of
 * deltas and the options: deltas are sorted by id before anything is read, every id must be the
 * sha256 of its payload, duplicates are refused, and every delta is opened and checked (layout,
 * round, base, example count) before the rule reads a single value. Memory: one tensor's float64
 * accumulator plus the compressed payloads, whatever the number of deltas.
 */
export function fuseRound(base: TensorMap, deltas: readonly DeltaInput[], opts: FuseOptions = {}): TensorMap {
  const rule = getFusionRule(opts.rule ?? 'mean')
  if (!rule) throw new RangeError(`unknown fusion rule ${JSON.stringify(opts.rule)} (known: ${fusionRuleIds().join(', ')})`)
  const params = opts.params ?? {}
  rule.checkParams?.(params)
  if (deltas.length === 0) throw new RangeError('fuseRound: no deltas to fuse (the round decides what happens when too few arrive)')
  for (const name of sortedNames(base)) {
    const t = base.get(name)!
    if (t.data.length !== numel(t.shape)) throw new RangeError(`base tensor ${name}: ${t.data.length} values for shape [${t.shape}]`)
  }
  const baseHash = opts.baseHash ?? hashTensors(base)
  if (!isHex64(baseHash)) throw new RangeError('fuseRound: baseHash must be 64 lowercase hex characters')

  const seen = new Set<string>()
  for (const d of deltas) {
    if (seen.has(d.id)) throw new DeltaRejectedError(`delta ${d.id} appears twice`, 'duplicate', d.id)
    seen.add(d.id)
  }
  // Canonical order first: nothing below may depend on the order we were given.
  const sorted = [...deltas].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))

  const inputs: FusionDelta[] = []
  let round = opts.round
  for (const d of sorted) {
    const short = String(d.id).slice(0, 16)
    if (!isHex64(d.id) || sha256Hex(d.payload) !== d.id) throw new DeltaRejectedError(`delta ${short}: id is not the sha256 of its payload`, 'id-mismatch', d.id)
    let reader
    try {
      reader = openDelta(d.payload, { layout: base, baseHash, round, maxBytes: opts.maxBytes })
    } catch (err) {
      const e = err as PayloadError
      throw new DeltaRejectedError(`delta ${short}: ${e.message}`, e.reason, d.id)
    }
    round ??= reader.meta.round // the first delta (in id order) sets it when the caller did not
    if (reader.meta.examples !== d.examples) {
      throw new DeltaRejectedError(`delta ${short}: announced ${d.examples} examples, payload says ${reader.meta.examples}`, 'examples-mismatch', d.id)
    }
    inputs.push({ id: d.id, examples: d.examples, meta: reader.meta, reader })
  }

  let fused: FusionDelta[] = inputs
  if (opts.normBound) {
    fused = applyNormBound(inputs, opts.normBound).kept
    // Every node makes the same decision; if all deltas are rejected the base stays as it is.
    if (fused.length === 0) return new Map([...base].map(([k, t]) => [k, { shape: [...t.shape], data: new Float32Array(t.data) }]))
  }
  const seed = createHash('sha256').update(`coldfusion-fuse\n${rule.id}\n${round}\n${baseHash}\n${inputs.map((d) => d.id).join('\n')}`).digest('hex')
  const ctx: FusionContext = { round: round!, baseHash, params, seed }
  try {
    return rule.fuse(base, fused, ctx)
  } catch (err) {
    // Values are checked while being read; name the delta whose tensor failed if we can.
    if (err instanceof PayloadError && !(err instanceof DeltaRejectedError)) {
      const culprit = inputs.find((d) => {
        try {
          for (const t of d.reader.tensors) d.reader.read(t.name)
          return false
        } catch {
          return true
        }
      })
      if (culprit) throw new DeltaRejectedError(`delta ${culprit.id.slice(0, 16)}: ${err.message}`, err.reason, culprit.id)
    }
    throw err
  }
}
