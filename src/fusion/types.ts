import type { TensorMap } from '../model/tensors.js'
import type { DeltaMeta, DeltaReader } from '../codec/index.js'
import type { SharedSource } from './threads.js'

/**
 * A fusion rule has one job, as a Flower Strategy's aggregate: turn the base and a set of deltas
 * into the next base. Transport, agreement and validation live elsewhere (fuseRound validates
 * before a rule runs). Each rule is its own file, registered by id (registry.ts).
 *
 * Contract, which every rule must keep so that all nodes reach the same bytes:
 * - `deltas` arrive sorted by id, validated against the base layout and the round; a rule must
 *   process them in that order, in plain TypedArray arithmetic (float64 accumulation), and
 *   round to float32 once per value at the end.
 * - The result may depend only on the base, the set of deltas and `ctx` (never on time, the
 *   machine, Math.random or Map insertion order). Rules needing randomness (DARE) derive it
 *   from ctx.seed.
 * - Memory must not grow with the number of deltas times the model size: stream deltas piece by
 *   piece through `reader.stream(name)` (fuseBySum, fuseCoordinatewise), or read one tensor at
 *   a time through `reader.read(name, scratch)` (N copies of one tensor at most, as ties does).
 * - Never mutate `base`; return tensors with the base's names and shapes, each written into
 *   `ctx.output(name, length)` (every value of it: the array may be a recycled one).
 */
export interface FusionDelta {
  readonly id: string
  readonly examples: number
  readonly meta: DeltaMeta
  readonly reader: DeltaReader
}

/** Rule parameters as they appear in the swarm settings (e.g. {trim: 0.1} for a trimmed mean). */
export type FusionParams = Readonly<Record<string, number | string | boolean>>

export interface FusionContext {
  readonly round: number
  readonly baseHash: string
  readonly params: FusionParams
  /** sha256 over the base hash and the sorted delta ids: a seed every node agrees on. */
  readonly seed: string
  /** Coordinates per piece for rules that stream (fuseBySum, fuseCoordinatewise); never changes results. */
  readonly chunk?: number
  /**
   * The array tensor `name`'s result goes into: the caller's recycled one (FuseOptions.into), whose
   * memory is already mapped, or a new one. Its old contents are garbage; the rule writes them all.
   */
  readonly output: (name: string, length: number) => Float32Array
  /**
   * Set when fusion may use helper threads (threads.ts) and every delta can be read by them: each
   * delta's file or shared payload, by id, with the reader fuseRound opened on it (a delta whose
   * reader is another, e.g. wrapped by a norm bound, is not split). Rules that split work record
   * in `verified` the files they checked whole, which the caller then does not check again.
   */
  readonly shared?: { readonly sources: ReadonlyMap<string, { readonly source: SharedSource; readonly reader: DeltaReader }>; readonly verified: Set<string> }
}

export interface FusionRule {
  readonly id: string
  /** Validate the rule's params (throw RangeError); called before any delta is read. */
  checkParams?(params: FusionParams): void
  fuse(base: TensorMap, deltas: readonly FusionDelta[], ctx: FusionContext): TensorMap
}
