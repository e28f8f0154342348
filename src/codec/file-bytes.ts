import { closeSync, fstatSync, openSync, readSync } from 'node:fs'
import { PayloadError } from '../util/errors.js'
import { PayloadHasher } from './container.js'
import type { PayloadSource } from './container.js'

const VERIFY_PIECE = 1 << 20

/**
 * A payload read from its file with positioned reads into reused buffers (slots), so that fusing
 * N deltas from disk holds a few small buffers per delta instead of N payloads. The bytes are
 * hashed as they are read, front to back: fusion reads each file in order, so `verify` usually
 * only has the last bytes left to hash, and then checks the id (sha256 of the file) and the
 * container checksum, as reading the file whole would. Bytes read out of order are hashed by
 * `verify` in a pass of its own.
 */
export class FileBytes implements PayloadSource {
  private readonly slots = new Map<number, Buffer>()
  private readonly hasher: PayloadHasher

  private constructor(private fd: number | undefined, readonly path: string, readonly byteLength: number, private readonly hashAsRead: boolean) {
    this.hasher = new PayloadHasher(byteLength)
  }

  /**
   * Throws PayloadError 'not-found' if there is no such file. `hashAsRead: false` when another
   * reader checks the file (a fusion helper reading its share): `verify` then hashes it in one pass.
   */
  static open(path: string, opts: { hashAsRead?: boolean } = {}): FileBytes {
    let fd: number
    try {
      fd = openSync(path, 'r')
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      throw new PayloadError(`cannot open ${path}: ${code ?? (err as Error).message}`, code === 'ENOENT' ? 'not-found' : 'io-error')
    }
    try {
      return new FileBytes(fd, path, fstatSync(fd).size, opts.hashAsRead ?? true)
    } catch (err) {
      closeSync(fd)
      throw err
    }
  }

  read(pos: number, len: number, slot: number): Uint8Array {
    this.check(pos, len)
    let buf: Buffer
    if (slot < 0) buf = Buffer.allocUnsafeSlow(len)
    else {
      buf = this.slots.get(slot) ?? Buffer.alloc(0)
      if (buf.length < len) this.slots.set(slot, (buf = Buffer.allocUnsafeSlow(Math.max(len, buf.length * 2))))
    }
    const view = new Uint8Array(buf.buffer, buf.byteOffset, len)
    this.readInto(pos, len, view)
    return view
  }

  /** `len` bytes at `pos` straight into dest[0, len) (hashed there when in order). */
  readInto(pos: number, len: number, dest: Uint8Array): void {
    this.readRaw(pos, len, dest)
    if (this.hashAsRead) this.hashInOrder(pos, len, dest)
  }

  private readRaw(pos: number, len: number, dest: Uint8Array): void {
    if (len > dest.length) throw new RangeError(`readInto: ${len} bytes do not fit in ${dest.length}`)
    const fd = this.check(pos, len)
    for (let got = 0; got < len; ) {
      const n = readSync(fd, dest, got, len - got, pos + got)
      if (n === 0) throw new PayloadError(`${this.path} ended after ${pos + got} of ${this.byteLength} bytes`, 'truncated')
      got += n
    }
  }

  /** Hash the part of bytes [pos, pos + len) (in dest) that continues what was hashed so far. */
  private hashInOrder(pos: number, len: number, dest: Uint8Array): void {
    const at = this.hasher.position
    if (pos <= at && pos + len > at) this.hasher.update(dest.subarray(at - pos, len))
  }

  private check(pos: number, len: number): number {
    if (this.fd === undefined) throw new Error(`${this.path} is closed`)
    if (pos < 0 || len < 0 || pos + len > this.byteLength) throw new PayloadError(`read of ${len} bytes at ${pos} runs past the end of ${this.path} (${this.byteLength} bytes)`, 'truncated')
    return this.fd
  }

  /**
   * Hash whatever was not read in order, then check the file against `id` (reason 'hash-mismatch')
   * and the container checksum (reason 'checksum').
   */
  verify(id: string): void {
    while (this.hasher.position < this.byteLength) {
      const pos = this.hasher.position
      const len = Math.min(VERIFY_PIECE, this.byteLength - pos)
      const buf = this.read(pos, len, 2)
      if (!this.hashAsRead) this.hashInOrder(pos, len, buf)
    }
    this.slots.delete(2)
    const { id: actual, checksumOk } = this.hasher.result()
    if (actual !== id) throw new PayloadError(`${this.path} is damaged: its sha256 is ${actual.slice(0, 12)}`, 'hash-mismatch')
    if (!checksumOk) throw new PayloadError('delta payload: checksum mismatch (corrupt or truncated payload)', 'checksum')
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd)
    this.fd = undefined
    this.slots.clear()
  }
}
