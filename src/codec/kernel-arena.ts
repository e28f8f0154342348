/**
 * The fusion kernels' shared memory: one WebAssembly memory that the kernel of every fusion thread
 * imports. Each thread's scratch (its pieces and sums) is a region of it, and so can be a delta's
 * payload and a large base or result tensor: the kernel then reads and writes them where they
 * lie instead of copying every piece in and out. Regions are handed out and taken back by the
 * thread that owns the arena (the main thread, for fusion); helper threads are told where their
 * scratch, the payloads and the tensors are.
 */

/** 4 GiB, all a 32-bit memory can address. Address space is reserved, pages are used as written. */
export const ARENA_MAX_PAGES = 65536
const PAGE = 65536
const ALIGN = 64

export class KernelArena {
  /** Free regions [at, at + len), by address, none touching another. */
  private free: { at: number; len: number }[] = []
  private readonly used = new Map<number, number>()

  constructor(readonly memory: WebAssembly.Memory) {
    this.free.push({ at: 0, len: memory.buffer.byteLength })
    this.buffer()
  }

  /** The memory's current buffer (remembered, so views on it are known to be in the arena). */
  buffer(): SharedArrayBuffer {
    const b = this.memory.buffer as unknown as SharedArrayBuffer
    markKernelBuffer(b)
    return b
  }

  /** The address of a region of `bytes` bytes, 64-byte aligned, or undefined when the memory cannot hold it. */
  alloc(bytes: number): number | undefined {
    const len = Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN)
    let i = this.free.findIndex((r) => r.len >= len)
    if (i < 0 && !this.grow(len)) return undefined
    if (i < 0) i = this.free.findIndex((r) => r.len >= len)
    const r = this.free[i]
    const at = r.at
    if (r.len === len) this.free.splice(i, 1)
    else this.free[i] = { at: at + len, len: r.len - len }
    this.used.set(at, len)
    return at
  }

  /** Give back the region at `at` (from alloc); its bytes may then be handed out again. */
  release(at: number): void {
    const len = this.used.get(at)
    if (len === undefined) throw new Error(`kernel arena: no region at ${at} to release`)
    this.used.delete(at)
    let i = this.free.findIndex((r) => r.at > at)
    if (i < 0) i = this.free.length
    this.free.splice(i, 0, { at, len })
    // Merge with the next region, then with the previous one.
    const next = this.free[i + 1]
    if (next && at + len === next.at) this.free.splice(i, 2, { at, len: len + next.len })
    const prev = this.free[i - 1]
    if (prev && prev.at + prev.len === at) this.free.splice(i - 1, 2, { at: prev.at, len: prev.len + this.free[i].len })
  }

  /** Bytes in use and bytes the memory holds. */
  usage(): { used: number; size: number } {
    let used = 0
    for (const len of this.used.values()) used += len
    return { used, size: this.memory.buffer.byteLength }
  }

  /** Grow so that a free region of `len` bytes exists at the end; false when past the maximum. */
  private grow(len: number): boolean {
    const size = this.memory.buffer.byteLength
    const last = this.free[this.free.length - 1]
    const tail = last && last.at + last.len === size ? last.len : 0
    const pages = Math.ceil((len - tail) / PAGE)
    if (size / PAGE + pages > ARENA_MAX_PAGES) return false
    try {
      this.memory.grow(pages)
    } catch {
      return false // the system would not give the memory
    }
    if (tail > 0) last.len += pages * PAGE
    else this.free.push({ at: size, len: pages * PAGE })
    this.buffer()
    return true
  }
}

/** A region of an arena that moves (taken anew, the old one given back) when it must grow: a kernel's scratch. */
export class ArenaRegion {
  at = -1
  bytes = 0

  constructor(private readonly arena: KernelArena) {}

  /** The address of a region of at least `bytes` bytes, or undefined (the old region kept) when the arena cannot give one. */
  ensure(bytes: number): number | undefined {
    if (bytes <= this.bytes) return this.at
    const next = this.arena.alloc(bytes)
    if (next === undefined) return undefined
    this.release()
    this.at = next
    this.bytes = bytes
    return next
  }

  /** Give the region back to the arena. */
  release(): void {
    if (this.at >= 0) this.arena.release(this.at)
    this.at = -1
    this.bytes = 0
  }
}

/** A new shared memory for kernels, or null where WebAssembly has no shared memory. */
export function newKernelMemory(): WebAssembly.Memory | null {
  try {
    return new WebAssembly.Memory({ initial: 1, maximum: ARENA_MAX_PAGES, shared: true })
  } catch {
    return null
  }
}

/**
 * Buffer objects of the arena's memory known to this thread: the memory gives a new one after each
 * grow, and a view posted to a helper thread arrives on one of its own. Views on any of them are
 * views of the arena.
 */
const known = new WeakSet<ArrayBufferLike>()

export function markKernelBuffer(buffer: ArrayBufferLike): void {
  known.add(buffer)
}

/** The arena address of `view`'s first byte, if it lies in the arena. */
export function kernelAddress(view: ArrayBufferView): number | undefined {
  return known.has(view.buffer) ? view.byteOffset : undefined
}

let arena: KernelArena | null | undefined

/** This thread's arena (fusion's helper threads do not use theirs: they work in the caller's), or null. */
export function kernelArena(): KernelArena | null {
  if (arena !== undefined) return arena
  const memory = newKernelMemory()
  arena = memory && new KernelArena(memory)
  return arena
}

/**
 * `length` bytes in the kernel arena, for a delta payload that fusion should read in place
 * (release them with releaseKernelBytes), or in a plain SharedArrayBuffer when the arena cannot
 * hold them.
 */
export function kernelBytes(length: number): Uint8Array {
  const a = kernelArena()
  const at = a?.alloc(length)
  if (at === undefined) return new Uint8Array(new SharedArrayBuffer(length))
  return new Uint8Array(a!.buffer(), at, length)
}

/** Give back the arena bytes of a kernelBytes view (nothing for one outside the arena). */
export function releaseKernelBytes(view: Uint8Array): void {
  const at = kernelAddress(view)
  if (at !== undefined) kernelArena()!.release(at)
}
