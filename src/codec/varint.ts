import { PayloadError } from '../util/errors.js'

/**
 * Unsigned LEB128 varints (7 bits per byte, low groups first) for sparse indices: a gap below
 * 128 costs one byte. Only values below 2^31 occur (tensor indices), so at most 5 bytes.
 * Decoding accepts only the shortest encoding, so an index list has exactly one byte form.
 */

export const MAX_VARINT = 2 ** 31 - 1

export function varintSize(x: number): number {
  let n = 1
  while (x >= 0x80) {
    x = Math.floor(x / 128)
    n++
  }
  return n
}

/** Write `x` (an integer in [0, MAX_VARINT]) at `pos`; returns the position after it. */
export function writeVarint(out: Uint8Array, pos: number, x: number): number {
  while (x >= 0x80) {
    out[pos++] = (x & 0x7f) | 0x80
    x = Math.floor(x / 128)
  }
  out[pos++] = x
  return pos
}

/** Reads varints from bytes[pos, end); every problem is a PayloadError. */
export class VarintReader {
  constructor(
    private readonly bytes: Uint8Array,
    public pos: number,
    private readonly end: number,
  ) {}

  next(): number {
    let value = 0
    let mul = 1
    for (let i = 0; i < 5; i++) {
      if (this.pos >= this.end) throw new PayloadError('a varint runs past the end of its section', 'truncated')
      const b = this.bytes[this.pos++]
      value += (b & 0x7f) * mul
      if (b < 0x80) {
        if (b === 0 && i > 0) throw new PayloadError('a varint has a redundant trailing zero byte', 'non-canonical')
        if (value > MAX_VARINT) throw new PayloadError(`varint ${value} exceeds ${MAX_VARINT}`, 'malformed')
        return value
      }
      mul *= 128
    }
    throw new PayloadError('a varint is longer than 5 bytes', 'malformed')
  }
}
