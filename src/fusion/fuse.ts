import { createHash } from 'node:crypto'
import { numel, sortedNames, type TensorMap } from '../model/tensors.js'
import { PayloadError } from '../util/errors.js'
import { isHex64 } from '../util/hash.js'
import { FileBytes, openDelta, openDeltaSource, payloadDigests, type DecodeExpect, type DeltaReader } from '../codec/index.js'
import { hashTensors } from './hash.js'
import { applyNormBound, type NormBound } from './norm-bound.js'
import { fusionRuleIds, getFusionRule } from './registry.js'
import { kernelAddress } from '../codec/kernel-arena.js'
import { helpersUsable, isShared, tensorArray, type SharedSource } from './threads.js'
import type { FusionContext, FusionDelta, FusionParams, FusionRule } from './types.js'

/** A delta as the round hands it over: its id (sha256 of the payload), the bytes, its example count. */
export interface DeltaInput {
  id: string
  payload: Uint8Array
  examples: number
}

/**
 * The same, with the payload left in its file (the content store's): read piece by piece during
 * fusion, so memory does not grow with the number of deltas.
 */
export interface DeltaFileInput {
  id: string
  file: string
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
  /**
   * The caller checked, for every in-memory payload, that sha256(payload) is its id and that
   * validateDelta accepted it (the daemon does both when a delta arrives). Then neither the id
   * nor the container checksum is hashed again: the checksum only detects damage, and these are
   * the very bytes found intact. Layout, round, base, example count and every value are still
   * checked. File inputs are always checked against their id, as they are read.
   */
  verified?: boolean
  /** Coordinates per piece of the streaming rules (default CHUNK); results never depend on it. */
  chunk?: number
  /**
   * Tensors with the base's names and sizes to write the result into, e.g. a base the caller no
   * longer needs: writing memory that is already mapped saves the page faults of a fresh
   * model-sized array, which cost more than reading all the deltas. Their old values never reach
   * the result. They must not share memory with `base` or an in-memory payload.
   */
  into?: TensorMap
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
 * round, base, example count) before the rule reads a single value. Memory: the base, the result
 * and a small float64 accumulator, plus the payloads given in memory (file inputs are read piece
 * by piece), whatever the number of deltas.
 */
export function fuseRound(base: TensorMap, deltas: readonly (DeltaInput | DeltaFileInput)[], opts: FuseOptions = {}): TensorMap {
  const rule = getFusionRule(opts.rule ?? 'mean')
  if (!rule) throw new RangeError(`unknown fusion rule ${JSON.stringify(opts.rule)} (known: ${fusionRuleIds().join(', ')})`)
  const params = opts.params ?? {}
  rule.checkParams?.(params)
  if (deltas.length === 0) throw new RangeError('fuseRound: no deltas to fuse (the round decides what happens when too few arrive)')
  for (const name of sortedNames(base)) {
    const t = base.get(name)!
    if (t.data.length !== numel(t.shape)) throw new RangeError(`base tensor ${name}: ${t.data.length} values for shape [${t.shape}]`)
  }
  if (opts.into) checkInto(base, opts.into, deltas)
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
  const files: { id: string; bytes: FileBytes }[] = []
  try {
    let round = opts.round
    for (const d of sorted) {
      const reader = openInput(d, { layout: base, baseHash, round, maxBytes: opts.maxBytes }, opts.verified === true, files)
      round ??= reader.meta.round // the first delta (in id order) sets it when the caller did not
      if (reader.meta.examples !== d.examples) {
        throw new DeltaRejectedError(`delta ${d.id.slice(0, 16)}: announced ${d.examples} examples, payload says ${reader.meta.examples}`, 'examples-mismatch', d.id)
      }
      inputs.push({ id: d.id, examples: d.examples, meta: reader.meta, reader })
    }
    const shared = sharedInputs(sorted, inputs)
    const out = runRule(base, inputs, rule, { round: round!, baseHash, params, chunk: opts.chunk, output: outputFor(opts.into), shared }, opts.normBound, files)
    // A file changed since it was received must not count: its bytes were hashed as they were read
    // (or whole, by the thread that checked it).
    for (const f of files) if (!shared?.verified.has(f.id)) verifyFile(f)
    return out
  } finally {
    for (const f of files) f.bytes.close()
  }
}

/** Where each result tensor goes: the caller's array for it, or a new one (shared, for helper threads, when large). */
function outputFor(into: TensorMap | undefined): (name: string, length: number) => Float32Array {
  return (name, length) => into?.get(name)?.data ?? tensorArray(length)
}

/**
 * Every delta as helper threads can read it (its file, or a payload in shared memory), with the
 * reader opened here: a rule may only split a delta it reads through that very reader (one
 * wrapped on the way, e.g. scaled by a norm bound, reads other values than its source holds).
 */
function sharedInputs(deltas: readonly (DeltaInput | DeltaFileInput)[], inputs: readonly FusionDelta[]): FusionContext['shared'] {
  if (!helpersUsable()) return undefined
  const sources = new Map<string, { source: SharedSource; reader: DeltaReader }>()
  for (const [k, d] of deltas.entries()) {
    const reader = inputs[k].reader
    if ('file' in d) sources.set(d.id, { source: { id: d.id, file: d.file }, reader })
    else if (isShared(d.payload)) sources.set(d.id, { source: { id: d.id, bytes: d.payload, at: kernelAddress(d.payload) }, reader })
    else return undefined
  }
  return { sources, verified: new Set() }
}

function checkInto(base: TensorMap, into: TensorMap, deltas: readonly (DeltaInput | DeltaFileInput)[]): void {
  const names = sortedNames(base)
  if (into.size !== names.length) throw new RangeError(`fuseRound: into has ${into.size} tensors, the base ${names.length}`)
  // Each view's memory and byte range, looked up once (a model has hundreds of tensors).
  const taken = new Map<object, [number, number][]>()
  const note = (v: ArrayBufferView) => {
    const [key, at] = where(v)
    const list = taken.get(key) ?? []
    list.push([at, at + v.byteLength])
    taken.set(key, list)
  }
  for (const t of base.values()) note(t.data)
  for (const d of deltas) if ('payload' in d) note(d.payload)
  for (const name of names) {
    const t = into.get(name)
    if (!t || t.data.length !== base.get(name)!.data.length) throw new RangeError(`fuseRound: into lacks tensor ${name} of ${base.get(name)!.data.length} values`)
    const [key, at] = where(t.data)
    const end = at + t.data.byteLength
    if (taken.get(key)?.some(([a, b]) => a < end && at < b)) throw new RangeError(`fuseRound: into's tensor ${name} shares memory with the base or a payload`)
  }
}

/** The kernel arena (many buffer objects of one memory, addressed from 0) stands as one memory; any other view is on its buffer. */
const ARENA = {}
function where(v: ArrayBufferView): [object, number] {
  const at = kernelAddress(v)
  return at === undefined ? [v.buffer, v.byteOffset] : [ARENA, at]
}

function openInput(d: DeltaInput | DeltaFileInput, expect: DecodeExpect, verified: boolean, files: { id: string; bytes: FileBytes }[]): DeltaReader {
  const short = String(d.id).slice(0, 16)
  if (!isHex64(d.id)) throw new DeltaRejectedError(`delta ${short}: id is not a sha256`, 'id-mismatch', d.id)
  try {
    if ('file' in d) {
      const bytes = FileBytes.open(d.file)
      files.push({ id: d.id, bytes })
      try {
        // The checksum is checked with the id as the file is read (FileBytes.verify).
        return openDeltaSource(bytes, expect, true)
      } catch (err) {
        // A damaged file is the likelier cause: say so.
        bytes.verify(d.id)
        throw err
      }
    }
    if (verified) return openDelta(d.payload, expect, { checksumOk: true })
    const { id, checksumOk } = payloadDigests(d.payload)
    if (id !== d.id) throw new DeltaRejectedError(`delta ${short}: id is not the sha256 of its payload`, 'id-mismatch', d.id)
    return openDelta(d.payload, expect, { checksumOk })
  } catch (err) {
    if (err instanceof DeltaRejectedError) throw err
    const e = err as PayloadError
    throw new DeltaRejectedError(`delta ${short}: ${e.message}`, e.reason ?? 'malformed', d.id)
  }
}

/** Tensor `name` of the base, unchanged, in its output array. */
function copyTensor(name: string, t: { shape: number[]; data: Float32Array }, output: FusionContext['output']): { shape: number[]; data: Float32Array } {
  const data = output(name, t.data.length)
  data.set(t.data)
  return { shape: [...t.shape], data }
}

function verifyFile(f: { id: string; bytes: FileBytes }): void {
  try {
    f.bytes.verify(f.id)
  } catch (err) {
    const e = err as PayloadError
    throw new DeltaRejectedError(`delta ${f.id.slice(0, 16)}: ${e.message}`, e.reason ?? 'malformed', f.id)
  }
}

function runRule(
  base: TensorMap,
  inputs: FusionDelta[],
  rule: FusionRule,
  c: Pick<FusionContext, 'round' | 'baseHash' | 'params' | 'chunk' | 'output' | 'shared'>,
  normBound: NormBound | undefined,
  files: { id: string; bytes: FileBytes }[],
): TensorMap {
  try {
    let fused: FusionDelta[] = inputs
    if (normBound) {
      fused = applyNormBound(inputs, normBound, c.chunk).kept
      // Every node makes the same decision; if all deltas are rejected the base stays as it is.
      if (fused.length === 0) return new Map(sortedNames(base).map((k) => [k, copyTensor(k, base.get(k)!, c.output)]))
    }
    const seed = createHash('sha256').update(`coldfusion-fuse\n${rule.id}\n${c.round}\n${c.baseHash}\n${inputs.map((d) => d.id).join('\n')}`).digest('hex')
    const ctx: FusionContext = { ...c, seed }
    return rule.fuse(base, fused, ctx)
  } catch (err) {
    // Values are checked while being read; name the delta whose tensor failed if we can.
    if (err instanceof PayloadError && !(err instanceof DeltaRejectedError)) {
      for (const f of files) verifyFile(f)
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
