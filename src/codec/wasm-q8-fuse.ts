import { F64, I32, V128, get, ifElse, memarg, op, set, simd, sleb, v, v128Zero, whileNot } from './wasm-asm.js'

/**
 * (func $fuse (param $n $K $off $B $pt $ptk $out $sp $acc $base $flags i32) (param $scale $div f64) (result i32))
 * (one $fuse per input count K = 1 .. 8, each with its inputs written out, so $K is not read)
 *
 * Up to 8 q8 inputs (input k: its block scales from the address at $pt + 8k, its int8 values from
 * the address at $pt + 8k + 4, all in blocks of B, the piece starting `off` values into its
 * block; a staged slot or a payload in place) added in input order into float64 sums held in
 * registers, 16 coordinates per step: per coordinate the same operations in the same order as
 * one `sum` call per input, so the same doubles. The sums start at 0 (flag 1) or from acc; then
 * (flag 2) out = f32(base + (scale * sum) / div) (as `finish`; $out may be $base), or else they
 * go back to acc. Flag 4: multiply each value by its input's weight (f64x2 splats at
 * $sp + 128 + 16k); flag 8: the finish multiplies by $div (a power of two's reciprocal) instead
 * of dividing. $sp + 16k holds input k's current scale splat. $ptk walks the table. Returns 1 if
 * some q is -128.
 *
 * $fuseF32 has the same signature and does the same for float32 inputs (input k's values from the
 * address at $pt + 8k + 4; $off and $B unused): it returns 1 if some sum is not finite, which a
 * non-finite input always makes it (the caller then finds and names that input).
 */

const [N, K, OFF, BS, PT, PTK, OUT, SP, ACC, BASE, FLAGS, SCALE, DIV] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
const [I, END, KI, QK, SPK, BLK4, BADS, QV, SCK] = [13, 14, 15, 16, 17, 18, 19, 20, 21]
const [A, XV] = [22, 23]
const A0 = 24
const [X, LO, HI, F, S, W, M, BAD, SCV, DVV, BV] = [32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42]

/** Input k's values address (from the table entry $ptk walks), plus `plus`. */
const qAt = (plus: number[]) => [...get(PTK), op.i32Load, ...memarg(2, 4), ...plus, op.i32Add]
/** Input k's scales address plus the block's offset. */
const scAt = () => [...get(PTK), op.i32Load, ...memarg(2, 0), ...get(BLK4), op.i32Add]
/**
 * Per input: set up the walk over the table and the splats, run `body`, step to the next input.
 * With `unroll`, exactly that many inputs, written out one after the other (no loop to branch
 * back on per 16 values: a function per input count); else a loop over $K inputs.
 */
const eachInput = (body: number[], unroll?: number) => {
  const next = [...addI(PTK, [op.i32Const, 8]), ...addI(SPK, [op.i32Const, 16])]
  return [
    ...get(PT), ...set(PTK),
    ...get(SP), ...set(SPK),
    ...(unroll === undefined
      ? [op.i32Const, 0, ...set(KI), ...whileNot([...get(KI), ...get(K), op.i32GeS], [...body, ...next, ...addI(KI, [op.i32Const, 1])])]
      : Array.from({ length: unroll }, () => [...body, ...next]).flat()),
  ]
}

const flag = (bit: number) => [...get(FLAGS), op.i32Const, bit, op.i32And]
const addI = (local: number, by: number[]) => [...get(local), ...by, op.i32Add, ...set(local)]
const swapHalves = [...v(simd.shuffle, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7)]

/** A_j = A_j + [W *] promote(F's lanes), for the two halves of F. */
function addHalves(a: number, weighted: boolean): number[] {
  const one = (acc: number, upper: boolean) => [
    ...get(acc), ...get(F), ...(upper ? [...get(F), ...swapHalves] : []), ...v(simd.f64x2PromoteLowF32x4),
    ...(weighted ? [...get(W), ...v(simd.f64x2Mul)] : []), ...v(simd.f64x2Add), ...set(acc),
  ]
  return [...one(a, false), ...one(a + 1, true)]
}

/** Every input's next 16 values into A0..A7. */
function inputs(weighted: boolean, unroll?: number): number[] {
  return eachInput([
    ...qAt(get(I)), ...v(simd.load, ...memarg(0, 0)), ...set(X),
    ...get(BAD), ...get(X), ...get(M), ...v(simd.i8x16Eq), ...v(simd.or), ...set(BAD),
    ...get(SPK), ...v(simd.load, ...memarg(4, 0)), ...set(S),
    ...(weighted ? [...get(SPK), ...v(simd.load, ...memarg(4, 128)), ...set(W)] : []),
    ...get(X), ...v(simd.i16x8ExtendLowI8x16S), ...set(LO),
    ...get(X), ...v(simd.i16x8ExtendHighI8x16S), ...set(HI),
    ...[LO, HI].flatMap((src, h) => [false, true].flatMap((high, j) => [
      ...get(src), ...v(high ? simd.i32x4ExtendHighI16x8S : simd.i32x4ExtendLowI16x8S), ...v(simd.f32x4ConvertI32x4S), ...get(S), ...v(simd.f32x4Mul), ...set(F),
      ...addHalves(A0 + 4 * h + 2 * j, weighted),
    ])),
  ], unroll)
}

/** out[i .. i+16) = f32(f64(base[i .. i+16)) + (scale * A) (/ or *) div). */
function finish16(mul: boolean): number[] {
  const half = (acc: number, upper: boolean) => [
    ...get(BV), ...(upper ? [...get(BV), ...swapHalves] : []), ...v(simd.f64x2PromoteLowF32x4),
    ...get(SCV), ...get(acc), ...v(simd.f64x2Mul), ...get(DVV), ...v(mul ? simd.f64x2Mul : simd.f64x2Div),
    ...v(simd.f64x2Add), ...v(simd.f32x4DemoteF64x2Zero),
  ]
  const four = (off: number, a: number) => [
    ...get(OUT), ...get(I), op.i32Const, 2, op.i32Shl, op.i32Add,
    ...get(BASE), ...get(I), op.i32Const, 2, op.i32Shl, op.i32Add, ...v(simd.load, ...memarg(2, off)), ...set(BV),
    ...half(a, false), ...half(a + 1, true),
    ...v(simd.shuffle, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23),
    ...v(simd.store, ...memarg(2, off)),
  ]
  return [0, 1, 2, 3].flatMap((j) => four(16 * j, A0 + 2 * j))
}

const accAt = (j: number) => [...get(ACC), ...get(I), op.i32Const, 3, op.i32Shl, op.i32Add, ...v(simd.load, ...memarg(3, 16 * j))]
const storeAcc = (j: number) => [...get(ACC), ...get(I), op.i32Const, 3, op.i32Shl, op.i32Add, ...get(A0 + j), ...v(simd.store, ...memarg(3, 16 * j))]

const iAddr = (shift: number, base: number) => [...get(base), ...get(I), op.i32Const, shift, op.i32Shl, op.i32Add]
const f64Zero = [0x44, 0, 0, 0, 0, 0, 0, 0, 0]

/** The scalar A's finish into out[i]. */
const fin = (mul: boolean) => [
  ...iAddr(2, OUT),
  ...iAddr(2, BASE), op.f32Load, ...memarg(2, 0), op.f64PromoteF32,
  ...get(SCALE), ...get(A), op.f64Mul, ...get(DIV), mul ? op.f64Mul : op.f64Div,
  op.f64Add, op.f32DemoteF64, op.f32Store, ...memarg(2, 0),
]
/** The scalar A from 0 or acc[i]. */
const startA = ifElse(flag(1), [...f64Zero, ...set(A)], [...iAddr(3, ACC), op.f64Load, ...memarg(3, 0), ...set(A)])
/** The scalar A finished into the base, or back to acc[i]. */
const endA = ifElse(flag(2), ifElse(flag(8), fin(true), fin(false)), [...iAddr(3, ACC), ...get(A), op.f64Store, ...memarg(3, 0)])

/** One coordinate (the run's scalar tail): the same sums and finish, one value at a time. */
function scalarStep(unroll?: number): number[] {
  return [
    ...startA,
    ...eachInput([
      ...qAt(get(I)), op.i32Load8S, ...memarg(0, 0), op.localTee, QV,
      op.i32Const, ...sleb(-128), op.i32Eq, ...get(BADS), op.i32Or, ...set(BADS),
      ...get(QV), op.f32ConvertI32S, ...scAt(), op.f32Load, ...memarg(2, 0), op.f32Mul, op.f64PromoteF32, ...set(XV),
      ...ifElse(flag(4), [...get(SPK), op.f64Load, ...memarg(3, 128), ...get(XV), op.f64Mul, ...set(XV)], []),
      ...get(A), ...get(XV), op.f64Add, ...set(A),
    ], unroll),
    ...endA,
    ...addI(I, [op.i32Const, 1]),
  ]
}

/** Sixteen coordinates: sums in A0..A7 from 0 or acc, every input added (`add`: q8 or f32), then finished or stored. */
function vectorStep(add: (weighted: boolean) => number[], checkSums: boolean): number[] {
  const all = [0, 1, 2, 3, 4, 5, 6, 7]
  const zero = all.flatMap((j) => [...v128Zero(), ...set(A0 + j)])
  const load = all.flatMap((j) => [...accAt(j), ...set(A0 + j)])
  // x - x is +0 (all bits 0) for a finite x and NaN otherwise.
  const nonFinite = all.flatMap((j) => [...get(BAD), ...get(A0 + j), ...get(A0 + j), ...v(simd.f64x2Sub), ...v(simd.or), ...set(BAD)])
  return [
    ...ifElse(flag(1), zero, load),
    ...ifElse(flag(4), add(true), add(false)),
    ...(checkSums ? nonFinite : []),
    ...ifElse(flag(2), ifElse(flag(8), finish16(true), finish16(false)), all.flatMap(storeAcc)),
    ...addI(I, [op.i32Const, 16]),
  ]
}

/** Every f32 input's next 16 values into A0..A7. */
function f32Inputs(weighted: boolean): number[] {
  return eachInput([
    ...qAt([...get(I), op.i32Const, 2, op.i32Shl]), ...set(QK),
    ...(weighted ? [...get(SPK), ...v(simd.load, ...memarg(4, 128)), ...set(W)] : []),
    ...[0, 1, 2, 3].flatMap((j) => [...get(QK), ...v(simd.load, ...memarg(4, 16 * j)), ...set(F), ...addHalves(A0 + 2 * j, weighted)]),
  ])
}

/** One f32 coordinate (the scalar tail). */
function f32ScalarStep(): number[] {
  return [
    ...startA,
    ...eachInput([
      ...qAt([...get(I), op.i32Const, 2, op.i32Shl]), op.f32Load, ...memarg(2, 0), op.f64PromoteF32, ...set(XV),
      ...ifElse(flag(4), [...get(SPK), op.f64Load, ...memarg(3, 128), ...get(XV), op.f64Mul, ...set(XV)], []),
      ...get(A), ...get(XV), op.f64Add, ...set(A),
    ]),
    ...get(A), ...get(A), op.f64Sub, ...f64Zero, op.f64Ne, ...get(BADS), op.i32Or, ...set(BADS),
    ...endA,
    ...addI(I, [op.i32Const, 1]),
  ]
}

export function fuseF32Body(): number[] {
  const code = [
    ...get(SCALE), ...v(simd.f64x2Splat), ...set(SCV),
    ...get(DIV), ...v(simd.f64x2Splat), ...set(DVV),
    ...whileNot([...get(I), op.i32Const, 16, op.i32Add, ...get(N), op.i32GtS], vectorStep(f32Inputs, true)),
    ...whileNot([...get(I), ...get(N), op.i32GeS], f32ScalarStep()),
    ...get(BAD), ...v(simd.anyTrue), ...get(BADS), op.i32Or,
    op.end,
  ]
  // The same locals as $fuse.
  return [3, 9, I32, 2, F64, 19, V128, ...code]
}

/** $fuse for exactly `unroll` inputs, written out one after the other ($K is not read). */
export function fuseBody(unroll: number): number[] {
  const code = [
    ...get(SCALE), ...v(simd.f64x2Splat), ...set(SCV),
    ...get(DIV), ...v(simd.f64x2Splat), ...set(DVV),
    ...v(simd.const, ...new Array(16).fill(0x80)), ...set(M),
    ...whileNot([...get(I), ...get(N), op.i32GeS], [
      // This block's scale splat for every input, and where the run ends.
      ...eachInput([...get(SPK), ...scAt(), op.f32Load, ...memarg(2, 0), ...v(simd.f32x4Splat), ...v(simd.store, ...memarg(4, 0))], unroll),
      ...get(I), ...get(BS), op.i32Add, ...get(OFF), op.i32Sub, ...set(END),
      op.i32Const, 0, ...set(OFF),
      ...get(END), ...get(N), op.i32GtS, op.if, 0x40, ...get(N), ...set(END), op.end,
      ...whileNot([...get(I), op.i32Const, 16, op.i32Add, ...get(END), op.i32GtS], vectorStep((w) => inputs(w, unroll), false)),
      ...whileNot([...get(I), ...get(END), op.i32GeS], scalarStep(unroll)),
      ...addI(BLK4, [op.i32Const, 4]),
    ]),
    ...get(BAD), ...v(simd.anyTrue), ...get(BADS), op.i32Or,
    op.end,
  ]
  // Locals: 9 x i32, 2 x f64, 19 x v128.
  return [3, 9, I32, 2, F64, 19, V128, ...code]
}

/** The function's type: 11 x i32, 2 x f64 -> i32. */
export const FUSE_TYPE = [0x60, 13, ...new Array(11).fill(I32), F64, F64, 1, I32]
