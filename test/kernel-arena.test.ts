import assert from 'node:assert/strict'
import { ArenaRegion, KernelArena, kernelAddress, kernelBytes, newKernelMemory, releaseKernelBytes } from '../src/codec/kernel-arena.js'

/** The kernel arena's regions: aligned, never overlapping, given back and merged, bounded by the memory's maximum. */

describe('kernel arena', () => {
  it('hands out aligned regions that do not overlap, and takes them back whole', () => {
    const arena = new KernelArena(newKernelMemory()!)
    const sizes = [1, 63, 64, 65, 1000, 70_000, 5, 200_000]
    const regions = sizes.map((n) => ({ at: arena.alloc(n)!, n }))
    for (const r of regions) assert.equal(r.at % 64, 0, 'aligned to 64 bytes')
    const sorted = [...regions].sort((a, b) => a.at - b.at)
    for (let i = 1; i < sorted.length; i++) assert.ok(sorted[i - 1].at + sorted[i - 1].n <= sorted[i].at, 'no overlap')
    // Every region writable to its end after the memory grew for the later ones.
    const bytes = new Uint8Array(arena.buffer())
    regions.forEach((r, i) => bytes.fill(i + 1, r.at, r.at + r.n))
    regions.forEach((r, i) => assert.ok(bytes.subarray(r.at, r.at + r.n).every((x) => x === i + 1)))
    // Given back in a scattered order, the free space merges: the whole memory is one region again.
    for (const i of [3, 0, 7, 1, 5, 2, 6, 4]) arena.release(regions[i].at)
    assert.equal(arena.usage().used, 0)
    assert.equal(arena.alloc(arena.usage().size), 0, 'one free region spans the memory')
  })

  it('reuses freed space before growing, and refuses a double or unknown release', () => {
    const arena = new KernelArena(newKernelMemory()!)
    const a = arena.alloc(10_000)!
    const b = arena.alloc(10_000)!
    const size = arena.usage().size
    arena.release(a)
    assert.equal(arena.alloc(9_000), a, 'the freed region is taken first')
    assert.equal(arena.usage().size, size, 'without growing')
    assert.throws(() => arena.release(a + 64), /no region at/)
    arena.release(b)
    assert.throws(() => arena.release(b), /no region at/)
  })

  it('says no (undefined) when the memory cannot grow to hold a region', () => {
    const arena = new KernelArena(new WebAssembly.Memory({ initial: 1, maximum: 2, shared: true }))
    const a = arena.alloc(65536)!
    assert.equal(arena.alloc(65536 + 1), undefined, 'past the maximum')
    assert.notEqual(arena.alloc(65536), undefined, 'the rest still fits')
    arena.release(a)
    assert.equal(new KernelArena(newKernelMemory()!).alloc(2 ** 32 + 1), undefined, 'past the 4 GiB a memory can address')
  })

  it('a region moves only to grow, gives the old one back, and keeps it when the arena cannot give more', () => {
    const arena = new KernelArena(new WebAssembly.Memory({ initial: 1, maximum: 2, shared: true }))
    const r = new ArenaRegion(arena)
    const a = r.ensure(1000)!
    assert.equal(r.ensure(500), a, 'smaller: the same region')
    const b = r.ensure(5000)!
    assert.equal(arena.usage().used, 5056, 'the 1000-byte region was given back')
    assert.equal(r.ensure(3 * 65536), undefined, 'past the maximum')
    assert.equal(r.at, b, 'the old region kept')
    r.release()
    assert.equal(arena.usage().used, 0)
  })

  it('knows its views (also after the memory grew) and no others', () => {
    const v = kernelBytes(100)
    assert.equal(kernelAddress(v), v.byteOffset)
    const grown = kernelBytes(1 << 20)
    assert.equal(kernelAddress(v), v.byteOffset, 'an older buffer object of the same memory')
    assert.equal(kernelAddress(new Uint8Array(new SharedArrayBuffer(100))), undefined)
    assert.equal(kernelAddress(new Uint8Array(100)), undefined)
    releaseKernelBytes(grown)
    releaseKernelBytes(v)
    releaseKernelBytes(new Uint8Array(10)) // outside the arena: nothing to give back
  })
})
