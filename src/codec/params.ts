import { PayloadError } from '../util/errors.js'
import type { CodecParams, CodecSettings } from './types.js'

/** Parameter checks shared by the codecs: settings errors are RangeError, payload errors PayloadError. */

export const MAX_BLOCK_SIZE = 1 << 20
export const PPM = 1_000_000

const isBlockSize = (b: unknown): b is number => typeof b === 'number' && Number.isInteger(b) && b >= 1 && b <= MAX_BLOCK_SIZE
const isDensity = (d: unknown): d is number => typeof d === 'number' && Number.isInteger(d) && d >= 1 && d <= PPM

export interface ParamSpec {
  blockSize?: number
  densityPpm?: number
}

/** Params from user settings, for a codec taking the keys in `defaults` (missing settings take the default). */
export function paramsFromSettings(codec: string, settings: CodecSettings, defaults: ParamSpec): CodecParams {
  const out: Record<string, number> = {}
  if (defaults.blockSize !== undefined) {
    const b = settings.blockSize ?? defaults.blockSize
    if (!isBlockSize(b)) throw new RangeError(`${codec}: blockSize must be an integer in [1, ${MAX_BLOCK_SIZE}], got ${b}`)
    out.blockSize = b
  }
  if (defaults.densityPpm !== undefined) {
    const d = settings.densityPpm ?? defaults.densityPpm
    if (!isDensity(d)) throw new RangeError(`${codec}: densityPpm must be an integer in [1, ${PPM}], got ${d}`)
    out.densityPpm = d
  }
  return out
}

/** Validate params read from a payload header: exactly the keys of `spec`, each in range. */
export function checkParams(codec: string, raw: Readonly<Record<string, unknown>>, spec: ParamSpec): CodecParams {
  const want = Object.keys(spec).sort()
  const keys = Object.keys(raw).sort()
  if (keys.join(',') !== want.join(',')) throw new PayloadError(`codec ${codec} takes exactly {${want.join(', ')}}, got {${keys.join(', ')}}`, 'malformed')
  if (spec.blockSize !== undefined && !isBlockSize(raw.blockSize)) throw new PayloadError(`codec ${codec}: blockSize ${String(raw.blockSize)} is not an integer in [1, ${MAX_BLOCK_SIZE}]`, 'malformed')
  if (spec.densityPpm !== undefined && !isDensity(raw.densityPpm)) throw new PayloadError(`codec ${codec}: densityPpm ${String(raw.densityPpm)} is not an integer in [1, ${PPM}]`, 'malformed')
  return Object.fromEntries(want.map((k) => [k, raw[k] as number]))
}
