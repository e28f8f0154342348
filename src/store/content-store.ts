import { readFile, readdir, unlink, mkdir, access } from 'node:fs/promises'
import { join } from 'node:path'
import { writeFileAtomic } from '../util/atomic.js'
import { sha256Hex, isHex64 } from '../util/hash.js'
import { PayloadError } from '../util/errors.js'

/**
 * Files named by the sha256 of their bytes. Reads verify the hash, so a file damaged on disk is
 * reported, never used. Used for checkpoints (canonical safetensors) and delta payloads.
 */
export class ContentStore {
  constructor(readonly dir: string, readonly ext: string) {}

  path(id: string): string {
    if (!isHex64(id)) throw new PayloadError(`not a content id: ${String(id).slice(0, 80)}`, 'bad-id')
    return join(this.dir, `${id}.${this.ext}`)
  }

  async put(bytes: Uint8Array, expectId?: string): Promise<string> {
    const id = sha256Hex(bytes)
    if (expectId !== undefined && id !== expectId) {
      throw new PayloadError(`content hash ${id.slice(0, 12)} does not match the expected ${expectId.slice(0, 12)}`, 'hash-mismatch')
    }
    await this.putFetched(bytes, id)
    return id
  }

  /**
   * Store bytes that a fetch has just checked against `id` (the content protocol hashes them as
   * they arrive): a second hash here would be another pass over every fetched delta. Reads still
   * verify, so a file damaged later is still caught.
   */
  async putFetched(bytes: Uint8Array, id: string): Promise<void> {
    if (!(await this.has(id))) await writeFileAtomic(this.path(id), bytes)
  }

  async has(id: string): Promise<boolean> {
    try {
      await access(this.path(id))
      return true
    } catch {
      return false
    }
  }

  /** The bytes, verified against their name; undefined if absent. Throws if damaged. */
  async get(id: string): Promise<Uint8Array | undefined> {
    let buf: Buffer
    try {
      buf = await readFile(this.path(id))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw err
    }
    const bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength)
    const actual = sha256Hex(bytes)
    if (actual !== id) throw new PayloadError(`${this.path(id)} is damaged: its sha256 is ${actual.slice(0, 12)}`, 'hash-mismatch')
    return bytes
  }

  async list(): Promise<string[]> {
    await mkdir(this.dir, { recursive: true })
    const names = await readdir(this.dir)
    return names.filter((n) => n.endsWith(`.${this.ext}`)).map((n) => n.slice(0, -this.ext.length - 1)).filter(isHex64)
  }

  async remove(id: string): Promise<void> {
    await unlink(this.path(id)).catch(() => {})
  }
}
