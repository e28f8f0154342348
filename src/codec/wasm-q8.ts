/**
 * A WebAssembly SIMD kernel for the hot loop of fusion with q8 values: for a piece of n int8
 * values q in blocks with scales s, acc[i] += w * f64(f32(q[i]) * s) (one float32 rounding of the
 * exact product, then float64 multiply-add: the very operations of Q8Stream's JS loop, so the sums
 * are bit-identical; wasm floats are IEEE 754 with round-to-nearest on every engine). It returns
 * 1 if some q is -128 (non-canonical; the JS loop then names it). `sum` adds one delta's piece,
 * `fuse` (wasm-q8-fuse.ts) up to FUSE_INPUTS deltas' pieces with the sums in registers, and
 * `fuseF32` the same for dense float32 deltas.
 *
 * The module is assembled here from the instruction lists below (no binary is shipped). It
 * imports its memory: the process's kernel arena (kernel-arena.ts), shared by the kernels of every
 * fusion thread. Each thread's kernel works in its own region of it, which holds, for pieces of
 * up to cap values (see layout):
 *   [0, 8 * cap)         float64 accumulator (fuseBySum's, via accumulator)
 *   [8 * cap, 12 * cap)  a piece of the base, finished in place (finish, fuse: when base or result is outside the arena)
 *   then                 per input, its scale and weight splats (fuse), and where its scales and values are
 *   then                 FUSE_INPUTS slots, each a piece's block scales and int8 values
 * An input of `fuse` is a slot (staged) or a payload that lies in the arena (read in place).
 */

import { F32, F64, I32, V128, get, importSharedMemory, memarg, op, section, set, simd, sleb, str, uleb, v, WASM_HEADER } from './wasm-asm.js'
import { FUSE_TYPE, fuseBody, fuseF32Body } from './wasm-q8-fuse.js'
import { ARENA_MAX_PAGES, ArenaRegion, kernelAddress, kernelArena, markKernelBuffer, newKernelMemory } from './kernel-arena.js'

// sum's locals: params 0..6, then i32 i, end, ap, k, bad; f32 s; v128 S, W, M, VBAD, X, LO, HI, F.
const [Q, N, ACC, SC, OFF, BS, W_] = [0, 1, 2, 3, 4, 5, 6]
const [I, END, AP, K, BADS, S_] = [7, 8, 9, 10, 11, 12]
const [S, W, M, BAD, X, LO, HI, F] = [13, 14, 15, 16, 17, 18, 19, 20]
const f64Zero = [0x44, 0, 0, 0, 0, 0, 0, 0, 0]

/** The variants of sum: multiply by w or not (w = 1: w * x is x), add to acc or set it (0 + x: acc's old value unused). */
interface SumKind {
  weighted: boolean
  set: boolean
}

/** acc[ap + off .. +32) (+)= [w *] promote(f32x4.mul(convert(extend(src)), S)), lanes 0-1 then 2-3. */
function group(kind: SumKind, src: number, high: boolean, off: number): number[] {
  const halfTo64 = (upper: boolean) => [
    ...get(AP),
    ...(kind.set ? v(simd.const, ...new Array(16).fill(0)) : [...get(AP), ...v(simd.load, ...memarg(3, off + (upper ? 16 : 0)))]),
    ...get(F),
    ...(upper ? [...get(F), ...v(simd.shuffle, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7)] : []),
    ...v(simd.f64x2PromoteLowF32x4), ...(kind.weighted ? [...get(W), ...v(simd.f64x2Mul)] : []), ...v(simd.f64x2Add),
    ...v(simd.store, ...memarg(3, off + (upper ? 16 : 0))),
  ]
  return [
    ...get(src), ...v(high ? simd.i32x4ExtendHighI16x8S : simd.i32x4ExtendLowI16x8S),
    ...v(simd.f32x4ConvertI32x4S), ...get(S), ...v(simd.f32x4Mul), ...set(F),
    ...halfTo64(false),
    ...halfTo64(true),
  ]
}

/**
 * (func $sum (param $q i32) (param $n i32) (param $acc i32) (param $sc i32) (param $off i32) (param $B i32) (param $w f64) (result i32))
 *   A piece of n values whose first lies `off` values into its block of B; block scales from $sc.
 *   Per block run: 16 values per step (load, flag -128, sign-extend, convert, multiply by the
 *   scale, promote, [multiply by w], add), then a scalar tail. Returns 1 if some q is -128.
 */
function sumBody(kind: SumKind): number[] {
  const accOr0 = kind.set ? f64Zero : [...get(AP), op.f64Load, ...memarg(3, 0)]
  const code = [
    ...get(W_), ...v(simd.f64x2Splat), ...set(W),
    ...v(simd.const, ...new Array(16).fill(0x80)), ...set(M),
    op.block, 0x40, op.loop, 0x40,
    ...get(I), ...get(N), op.i32GeS, op.brIf, 1,
    // This block's scale, and where its run ends.
    ...get(SC), op.f32Load, ...memarg(2, 0), op.localTee, S_, ...v(simd.f32x4Splat), ...set(S),
    ...get(SC), op.i32Const, 4, op.i32Add, ...set(SC),
    ...get(I), ...get(BS), op.i32Add, ...get(OFF), op.i32Sub, ...set(END),
    op.i32Const, 0, ...set(OFF),
    ...get(END), ...get(N), op.i32GtS, op.if, 0x40, ...get(N), ...set(END), op.end,
    // Vector part: while i + 16 <= end.
    op.block, 0x40, op.loop, 0x40,
    ...get(I), op.i32Const, ...sleb(16), op.i32Add, ...get(END), op.i32GtS, op.brIf, 1,
    ...get(Q), ...get(I), op.i32Add, ...v(simd.load, ...memarg(0, 0)), ...set(X),
    ...get(BAD), ...get(X), ...get(M), ...v(simd.i8x16Eq), ...v(simd.or), ...set(BAD),
    ...get(ACC), ...get(I), op.i32Const, ...sleb(3), op.i32Shl, op.i32Add, ...set(AP),
    ...get(X), ...v(simd.i16x8ExtendLowI8x16S), ...set(LO),
    ...get(X), ...v(simd.i16x8ExtendHighI8x16S), ...set(HI),
    ...group(kind, LO, false, 0), ...group(kind, LO, true, 32), ...group(kind, HI, false, 64), ...group(kind, HI, true, 96),
    ...get(I), op.i32Const, ...sleb(16), op.i32Add, ...set(I),
    op.br, 0, op.end, op.end,
    // Scalar tail of the run.
    op.block, 0x40, op.loop, 0x40,
    ...get(I), ...get(END), op.i32GeS, op.brIf, 1,
    ...get(Q), ...get(I), op.i32Add, op.i32Load8S, ...memarg(0, 0), op.localTee, K,
    op.i32Const, ...sleb(-128), op.i32Eq, ...get(BADS), op.i32Or, ...set(BADS),
    ...get(ACC), ...get(I), op.i32Const, ...sleb(3), op.i32Shl, op.i32Add, ...set(AP),
    ...get(AP), ...accOr0,
    ...get(K), op.f32ConvertI32S, ...get(S_), op.f32Mul, op.f64PromoteF32, ...(kind.weighted ? [...get(W_), op.f64Mul] : []), op.f64Add,
    op.f64Store, ...memarg(3, 0),
    ...get(I), op.i32Const, 1, op.i32Add, ...set(I),
    op.br, 0, op.end, op.end,
    op.br, 0, op.end, op.end,
    ...get(BAD), ...v(simd.anyTrue), ...get(BADS), op.i32Or,
    op.end,
  ]
  // Local groups: 5 x i32, 1 x f32, 8 x v128.
  return [3, 5, I32, 1, F32, 8, V128, ...code]
}

/**
 * (func $finish (param $acc i32) (param $b i32) (param $n i32) (param $scale f64) (param $div f64))
 *   b[i] = f32(f64(b[i]) + (scale * acc[i]) / div), 4 values per step, then a scalar tail: the
 *   summing rules' finish (fuseBySum), in place on a piece of the base copied in. The `mul`
 *   variant multiplies by $div instead, for a div that is a power of two: x / 2^k and x * 2^-k are
 *   both the correctly rounded value of the same real number, so they are the same double.
 */
function finishBody(mul: boolean): number[] {
  const [A, B, N, SC, DV] = [0, 1, 2, 3, 4]
  const [I, PA, PB] = [5, 6, 7]
  const [SCV, DVV, BV, LO, HI] = [8, 9, 10, 11, 12]
  const half = (accOff: number, upper: boolean) => [
    ...get(BV), ...(upper ? [...get(BV), ...v(simd.shuffle, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7)] : []),
    ...v(simd.f64x2PromoteLowF32x4),
    ...get(SCV), ...get(PA), ...v(simd.load, ...memarg(3, accOff)), ...v(simd.f64x2Mul), ...get(DVV), ...v(mul ? simd.f64x2Mul : simd.f64x2Div),
    ...v(simd.f64x2Add),
  ]
  const code = [
    ...get(SC), ...v(simd.f64x2Splat), ...set(SCV),
    ...get(DV), ...v(simd.f64x2Splat), ...set(DVV),
    op.block, 0x40, op.loop, 0x40,
    ...get(I), op.i32Const, ...sleb(4), op.i32Add, ...get(N), op.i32GtS, op.brIf, 1,
    ...get(A), ...get(I), op.i32Const, ...sleb(3), op.i32Shl, op.i32Add, ...set(PA),
    ...get(B), ...get(I), op.i32Const, ...sleb(2), op.i32Shl, op.i32Add, op.localTee, PB,
    ...v(simd.load, ...memarg(2, 0)), ...set(BV),
    ...half(0, false), ...set(LO),
    ...half(16, true), ...set(HI),
    ...get(PB),
    ...get(LO), ...v(simd.f32x4DemoteF64x2Zero), ...get(HI), ...v(simd.f32x4DemoteF64x2Zero),
    ...v(simd.shuffle, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23),
    ...v(simd.store, ...memarg(2, 0)),
    ...get(I), op.i32Const, ...sleb(4), op.i32Add, ...set(I),
    op.br, 0, op.end, op.end,
    op.block, 0x40, op.loop, 0x40,
    ...get(I), ...get(N), op.i32GeS, op.brIf, 1,
    ...get(B), ...get(I), op.i32Const, ...sleb(2), op.i32Shl, op.i32Add, op.localTee, PB,
    ...get(PB), op.f32Load, ...memarg(2, 0), op.f64PromoteF32,
    ...get(SC), ...get(A), ...get(I), op.i32Const, ...sleb(3), op.i32Shl, op.i32Add, op.f64Load, ...memarg(3, 0), op.f64Mul,
    ...get(DV), mul ? op.f64Mul : op.f64Div, op.f64Add, op.f32DemoteF64,
    op.f32Store, ...memarg(2, 0),
    ...get(I), op.i32Const, 1, op.i32Add, ...set(I),
    op.br, 0, op.end, op.end,
    op.end,
  ]
  return [2, 3, I32, 5, V128, ...code]
}

const SUMS: [string, SumKind][] = [
  ['sum', { weighted: false, set: false }],
  ['sumW', { weighted: true, set: false }],
  ['set', { weighted: false, set: true }],
  ['setW', { weighted: true, set: true }],
]
const FINISHES: [string, boolean][] = [['finishDiv', false], ['finishMul', true]]

function moduleBytes(): Uint8Array<ArrayBuffer> {
  // $fuse written out for each input count, fuse1 .. fuse8: no loop over the inputs to branch on
  // per 16 values (17% less time for 8 deltas at 30.3M parameters), the same operations.
  const counts = Array.from({ length: FUSE_INPUTS }, (_, k) => k + 1)
  const bodies = [...SUMS.map(([, k]) => sumBody(k)), ...FINISHES.map(([, mul]) => finishBody(mul)), fuseF32Body(), ...counts.map((k) => fuseBody(k))]
  const names = [...SUMS.map(([n]) => n), ...FINISHES.map(([n]) => n), 'fuseF32', ...counts.map((k) => `fuse${k}`)]
  const types = [...SUMS.map(() => 0), ...FINISHES.map(() => 1), 2, ...counts.map(() => 2)]
  return new Uint8Array([
    ...WASM_HEADER,
    ...section(1, [3, 0x60, 7, I32, I32, I32, I32, I32, I32, F64, 1, I32, 0x60, 5, I32, I32, I32, F64, F64, 0, ...FUSE_TYPE]),
    ...importSharedMemory(ARENA_MAX_PAGES),
    ...section(3, [types.length, ...types]),
    ...section(7, [names.length, ...names.flatMap((n, i) => [...str(n), 0x00, i])]),
    ...section(10, [bodies.length, ...bodies.flatMap((b) => [...uleb(b.length), ...b])]),
  ])
}

/** Inputs `fuse` takes at once (slots in the kernel's memory); fuseBySum takes more in groups. */
export const FUSE_INPUTS = 8

export interface Q8Kernel {
  /**
   * acc (a view returned by accumulator) += w * fround(q * scale) for the n values in slot 0,
   * the first `off` values into its block of B, scales from slot 0; with `set`, acc = 0 + w *
   * value instead (the old content unused). 1 if some q is -128.
   */
  sum(n: number, acc: Float64Array, off: number, B: number, w: number, set: boolean): number
  /**
   * The same sums for the n values of inputs 0 .. inputs-1 (all in blocks of B; each a slot or a
   * payload in place, see pointSlot and point), one input after the other per coordinate, each
   * times its weight if `weights` is given, from 0 (`first`) or acc; then, if `last`, the finish
   * from the base piece into the result piece (both the base area unless `ends` gives their
   * addresses: a base and result that lie in the arena), else back to acc. 1 if some q is -128.
   */
  fuse(n: number, inputs: number, off: number, B: number, weights: readonly number[] | undefined, first: boolean, last: boolean, scale: number, div: number, ends?: PieceEnds): number
  /**
   * `fuse` for float32 inputs: the same sums, starts and finish. 1 if some sum is not finite,
   * which a non-finite input always makes it.
   */
  fuseF32(n: number, inputs: number, weights: readonly number[] | undefined, first: boolean, last: boolean, scale: number, div: number, ends?: PieceEnds): number
  /** Float64 accumulator of `cap` values in the kernel's region; lays out the areas for pieces of up to cap values. */
  accumulator(cap: number): Float64Array
  /** Slot k's values area (cap bytes; the same view until accumulator is called again). */
  slotQ(k: number): Uint8Array
  /** Slot k's scales area (cap + 1 floats). */
  slotScales(k: number): Float32Array
  /** Slot k as cap float32 values (its whole area, for fuseF32). */
  slotF32(k: number): Float32Array
  /** Input k of the next `fuse` call reads slot k's scales and values (slotScales, slotQ). */
  pointSlot(k: number): void
  /** Input k of the next fuse call reads block scales at address `sc` and values at `q` (f32: values at `q`) in the kernel's memory. */
  point(k: number, sc: number, q: number): void
  /** The base area (cap floats), for finish. */
  baseArea(): Float32Array
  /** base[i] = fround(base[i] + (scale * acc[i]) / div) for i < n, on baseArea (fuseBySum's finish). */
  finish(acc: Float64Array, n: number, scale: number, div: number): void
  /** Whether `view` lies in the kernel's memory (its address there is then view.byteOffset). */
  holds(view: ArrayBufferView): boolean
  /** Whether the memory is the kernel arena, so that payloads, bases and results there are read and written in place. */
  readonly arena: boolean
}

/** Addresses, in the kernel's memory, of a piece of the base and of the result it is finished into. */
export interface PieceEnds {
  base: number
  out: number
}

/** Where a kernel's region lies: `ensure(bytes)` gives the address of a region of at least that size (moving it if needed). */
export interface KernelRegion {
  ensure(bytes: number): number
}

let kernel: Q8Kernel | null | undefined
let enabled = true

type SumFn = (q: number, n: number, acc: number, sc: number, off: number, B: number, w: number) => number
type FinishFn = (acc: number, b: number, n: number, scale: number, div: number) => void
type FuseFn = (n: number, k: number, off: number, B: number, pt: number, ptk: number, out: number, sp: number, acc: number, base: number, flags: number, scale: number, div: number) => number

/** 2^-k for div = 2^k (k >= 0, a normal reciprocal), else null. */
function reciprocalOfPowerOfTwo(div: number): number | null {
  if (!(div >= 1 && div <= 2 ** 1022)) return null
  const k = Math.round(Math.log2(div))
  return 2 ** k === div ? 2 ** -k : null
}

const up16 = (x: number) => Math.ceil(x / 16) * 16

/**
 * Where things are, from the region's start `o`, for pieces of up to cap values: acc, base,
 * splats (16 bytes per input, scales then weights), the input table (8 bytes per input: scales
 * and values addresses), then the slots (scales, values).
 */
function layout(cap: number, o = 0) {
  const sp = o + up16(12 * cap)
  const table = sp + 32 * FUSE_INPUTS
  const slots = table + 8 * FUSE_INPUTS
  const qOff = up16(4 * (cap + 1))
  const stride = qOff + up16(cap + 16)
  return { acc: o, base: o + 8 * cap, sp, table, sc: slots, q: slots + qOff, stride, end: slots + FUSE_INPUTS * stride }
}

/** Bytes of a kernel region for pieces of up to cap values. */
export function kernelRegionBytes(cap: number): number {
  return layout(cap).end
}

let compiled: WebAssembly.Module | null | undefined

function kernelModule(): WebAssembly.Module | null {
  if (compiled === undefined) {
    try {
      compiled = new WebAssembly.Module(moduleBytes())
    } catch {
      compiled = null // no WebAssembly SIMD here: the JS loop does the work
    }
  }
  return compiled
}

/** A kernel working in `region` of `memory`: the kernel arena's (`arena`), or a memory of its own (everything it adds is then copied in). */
export function kernelOn(memory: WebAssembly.Memory, region: KernelRegion, arena = true): Q8Kernel | null {
  const module = kernelModule()
  if (!module) return null
  const ex = new WebAssembly.Instance(module, { k: { mem: memory } }).exports
  const [sum, sumW, setFn, setW] = ['sum', 'sumW', 'set', 'setW'].map((n) => ex[n] as SumFn)
  const finishDiv = ex.finishDiv as FinishFn
  const finishMul = ex.finishMul as FinishFn
  const fuseFor = Array.from({ length: FUSE_INPUTS + 1 }, (_, k) => ex[`fuse${k}`] as FuseFn | undefined)
  const fuseF32 = ex.fuseF32 as FuseFn
  let cap = -1
  let at = layout(0)
  let buffer = memory.buffer
  let qViews: Uint8Array[] = []
  let scaleViews: Float32Array[] = []
  let f32Views: Float32Array[] = []
  let table = new Int32Array(0)
  /** A memory of its own: the buffer objects its views are on. */
  const own = new WeakSet<ArrayBufferLike>()
  /** fuse's flags, weight splats and divisor. */
  const prepare = (inputs: number, weights: readonly number[] | undefined, first: boolean, last: boolean, div: number): [number, number] => {
    let flags = (first ? 1 : 0) | (last ? 2 : 0)
    if (weights) {
      flags |= 4
      const splats = new Float64Array(buffer, at.sp + 16 * FUSE_INPUTS, 2 * inputs)
      for (let k = 0; k < inputs; k++) splats.fill(weights[k], 2 * k, 2 * k + 2)
    }
    const r = last ? reciprocalOfPowerOfTwo(div) : null
    if (r !== null) flags |= 8
    return [flags, r ?? div]
  }
  // The region is shared memory: nothing may be written before accumulator() has placed it.
  const placed = () => {
    if (cap < 0) throw new Error('q8 kernel: accumulator() must lay out its region first')
  }
  const k: Q8Kernel = {
    sum(n, acc, off, B, w, set) {
      placed()
      const f = set ? (w === 1 ? setFn : setW) : w === 1 ? sum : sumW
      return f(at.q, n, acc.byteOffset, at.sc, off, B, w)
    },
    fuse(n, inputs, off, B, weights, first, last, scale, div, ends) {
      placed()
      const [flags, d] = prepare(inputs, weights, first, last, div)
      const fuse = fuseFor[inputs]
      if (!fuse) throw new RangeError(`fuse takes 1 to ${FUSE_INPUTS} inputs, got ${inputs}`)
      return fuse(n, inputs, off, B, at.table, 0, ends?.out ?? at.base, at.sp, at.acc, ends?.base ?? at.base, flags, scale, d)
    },
    fuseF32(n, inputs, weights, first, last, scale, div, ends) {
      placed()
      const [flags, d] = prepare(inputs, weights, first, last, div)
      return fuseF32(n, inputs, 0, 0, at.table, 0, ends?.out ?? at.base, at.sp, at.acc, ends?.base ?? at.base, flags, scale, d)
    },
    finish(acc, n, scale, div) {
      placed()
      const r = reciprocalOfPowerOfTwo(div)
      if (r === null) finishDiv(acc.byteOffset, at.base, n, scale, div)
      else finishMul(acc.byteOffset, at.base, n, scale, r)
    },
    accumulator(want: number) {
      if (want !== cap) {
        const o = region.ensure(layout(want).end)
        cap = want
        at = layout(cap, o)
        buffer = memory.buffer
        if (arena) markKernelBuffer(buffer)
        else own.add(buffer)
        qViews = Array.from({ length: FUSE_INPUTS }, (_, k) => new Uint8Array(buffer, at.q + k * at.stride, cap))
        scaleViews = Array.from({ length: FUSE_INPUTS }, (_, k) => new Float32Array(buffer, at.sc + k * at.stride, cap + 1))
        // A slot's stride holds cap + 1 scales and cap + 16 bytes: more than cap floats.
        f32Views = Array.from({ length: FUSE_INPUTS }, (_, k) => new Float32Array(buffer, at.sc + k * at.stride, cap))
        table = new Int32Array(buffer, at.table, 2 * FUSE_INPUTS)
      }
      return new Float64Array(buffer, at.acc, want)
    },
    slotQ: (k) => qViews[k],
    slotScales: (k) => scaleViews[k],
    slotF32: (k) => f32Views[k],
    pointSlot(k) {
      placed()
      table[2 * k] = at.sc + k * at.stride
      table[2 * k + 1] = at.q + k * at.stride
    },
    point(k, sc, q) {
      placed()
      table[2 * k] = sc
      table[2 * k + 1] = q
    },
    baseArea() {
      return new Float32Array(buffer, at.base, cap)
    },
    holds: (view) => (arena ? kernelAddress(view) !== undefined : own.has(view.buffer)),
    arena,
  }
  return k
}

/** A kernel on a memory of its own, which grows to what accumulator() asks (everything it adds is copied in). */
export function ownKernel(): Q8Kernel | null {
  const memory = newKernelMemory()
  if (!memory) return null
  const grow = (bytes: number) => memory.grow(Math.max(0, Math.ceil((bytes - memory.buffer.byteLength) / 65536)))
  return kernelOn(memory, { ensure: (bytes) => (grow(bytes), 0) }, false)
}

function instantiate(): Q8Kernel | null {
  const arena = kernelModule() && kernelArena()
  if (!arena) return null
  const region = new ArenaRegion(arena)
  return kernelOn(arena.memory, {
    ensure(bytes) {
      const at = region.ensure(bytes)
      if (at === undefined) throw new RangeError(`kernel arena: no room for ${bytes} bytes of kernel scratch`)
      return at
    },
  })
}

/** The kernel of this thread, or null when disabled or WebAssembly SIMD (or shared memory) is not available. */
export function q8Kernel(): Q8Kernel | null {
  if (!enabled) return null
  if (kernel === undefined) kernel = instantiate()
  return kernel
}

/** Make `k` this thread's kernel (a helper thread's, on the arena it was handed). */
export function setQ8Kernel(k: Q8Kernel | null): void {
  kernel = k
}

/** Turn the kernel off (or on again): tests compare it with the JS loop. */
export function useQ8Kernel(on: boolean): void {
  enabled = on
}
