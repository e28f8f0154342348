import { InvalidArgumentError } from 'commander'
import { CODEC_IDS, isSparseCodec } from '../codec/ids.js'
import { UserError } from '../util/errors.js'

/** Option parsers shared by the commands: each names the option in its error. */
export const int = (name: string, min = 0) => (v: string): number => {
  const n = Number(v)
  if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer >= ${min}`)
  return n
}

export const num = (name: string) => (v: string): number => {
  const n = Number(v)
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive number`)
  return n
}

/** `--density-ppm` only means something for the top-k codecs: say so instead of ignoring it. */
export function densityFor(codec: string | undefined, densityPpm: number | undefined): number | undefined {
  if (densityPpm === undefined) return undefined
  if (codec === undefined || !isSparseCodec(codec)) throw new UserError(`--density-ppm applies to the top-k codecs (${CODEC_IDS.filter(isSparseCodec).join(', ')}); give one with --codec`)
  return densityPpm
}

/** A repeatable option's values, in order. */
export const collect = (v: string, prev: string[] | undefined): string[] => [...(prev ?? []), v]
