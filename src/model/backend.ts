import { createRequire } from 'node:module'
import { dirname, sep } from 'node:path'
import * as tf from '@tensorflow/tfjs-core'
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm'
import type { Logger } from '../util/log.js'
import { ensureGradients } from './gradients.js'
import { matMulOn, type MatMulFn } from './wasm-matmul.js'

/**
 * Chooses the TensorFlow.js backend: the native CUDA backend where `@tensorflow/tfjs-node-gpu`
 * is installed, then native CPU (`@tensorflow/tfjs-node`), then WebAssembly, then plain JS.
 * The native packages are optional (their install downloads libtensorflow, which fails on
 * some machines), so they are imported by a computed name that tsc does not resolve.
 *
 * Kernel patches, each measured on the built-in model's training step:
 * - wasm BatchMatMul: transposed variants (every matMul gradient) are ~10x slower than an
 *   explicit Transpose followed by a plain product (DESIGN.md), so transpose first; batched
 *   products (attention) run a scalar loop and products with one row (bias gradients) repack
 *   their right operand every call, so those, and products whose right operand fits the
 *   caches, run our SIMD kernel (wasm-matmul.ts): the step 1.5 times as fast at batch 16;
 * - wasm UnsortedSegmentSum: missing, and it is the gradient of tf.gather (embedding lookups);
 * - wasm Identity: copies; tensors are immutable, so share the data by reference count;
 * - wasm GatherV2: generic strided loop; an axis-0 gather (embedding lookup) is row copies;
 * - cpu UnsortedSegmentSum: one masked sum per segment (seconds per step); made linear.
 */

export type BackendName = 'tensorflow-gpu' | 'tensorflow' | 'wasm' | 'cpu'
export type BackendPreference = 'auto' | BackendName

export interface BackendSelection {
  /** The tfjs backend now active: 'tensorflow' (native, CPU or GPU), 'wasm' or 'cpu'. */
  name: string
  /** Which entry of the chain was used ('tensorflow-gpu' and 'tensorflow' share backend name 'tensorflow'). */
  choice: BackendName
  /** Entries tried before the chosen one, with the reason each was skipped. */
  tried: { name: string; error: string }[]
}

const CHAIN: BackendName[] = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu']
const NATIVE_PACKAGE: Record<'tensorflow-gpu' | 'tensorflow', string> = {
  'tensorflow-gpu': '@tensorflow/tfjs-node-gpu',
  tensorflow: '@tensorflow/tfjs-node',
}

let selection: Promise<BackendSelection> | undefined
let selectionPrefer: BackendPreference | undefined

/**
 * Selects and activates the best available backend, once per process: later calls return the
 * first call's result (switching backends under live tensors would strand them).
 */
export function selectBackend(opts: { prefer?: BackendPreference; log?: Logger } = {}): Promise<BackendSelection> {
  const prefer = opts.prefer ?? 'auto'
  if (selection) {
    if (prefer !== selectionPrefer) {
      opts.log?.warn({ prefer, selected: selectionPrefer }, 'tensorflow.js backend already selected; ignoring the new preference')
    }
    // Same result, and make sure it is still the active backend (a benchmark may have switched).
    return selection.then(async (result) => {
      if (tf.getBackend() !== result.name) await setOrThrow(result.name)
      return result
    })
  }
  selectionPrefer = prefer
  const attempt = runChain(prefer, opts.log)
  selection = attempt
  // A failed selection (nothing works) may be retried, e.g. after the user fixes the install.
  attempt.catch(() => {
    if (selection === attempt) {
      selection = undefined
      selectionPrefer = undefined
    }
  })
  return attempt
}

async function runChain(prefer: BackendPreference, log?: Logger): Promise<BackendSelection> {
  const chain = prefer === 'auto' ? CHAIN : CHAIN.slice(CHAIN.indexOf(prefer))
  const tried: { name: string; error: string }[] = []
  for (const choice of chain) {
    try {
      await activateBackend(choice)
      const result: BackendSelection = { name: tf.getBackend(), choice, tried }
      log?.info({ backend: result.name, choice, prefer, skipped: tried }, 'tensorflow.js backend selected')
      return result
    } catch (err) {
      const error = err instanceof Error ? err.message : String(err)
      tried.push({ name: choice, error })
      log?.debug({ backend: choice, err: error }, 'tensorflow.js backend unavailable, trying the next one')
    }
  }
  throw new Error(`no TensorFlow.js backend could be initialized: ${tried.map((t) => `${t.name}: ${t.error}`).join('; ')}`)
}

/**
 * Loads, initializes and activates one backend, or throws why it cannot. Lower level than
 * selectBackend (no fallback, no caching): for benchmarks and tests that compare backends.
 */
export async function activateBackend(choice: BackendName): Promise<void> {
  // tfjs-core's Node bundle has no gradients; register ours (kept if a native package brings its own).
  ensureGradients()
  switch (choice) {
    case 'tensorflow-gpu':
    case 'tensorflow': {
      const pkg = NATIVE_PACKAGE[choice]
      try {
        await import(pkg)
      } catch (err) {
        throw new Error(`${pkg} is not installed or failed to load (${firstLine(err)})`)
      }
      // The package registers 'tensorflow' into the tfjs-core it resolves; a second copy of
      // tfjs-core in node_modules would leave ours without it.
      if (!tf.findBackendFactory('tensorflow')) {
        throw new Error(`${pkg} loaded but registered its backend with another copy of @tensorflow/tfjs-core`)
      }
      await setOrThrow('tensorflow')
      return
    }
    case 'wasm': {
      await loadWasm()
      await setOrThrow('wasm')
      return
    }
    case 'cpu': {
      await import('@tensorflow/tfjs-backend-cpu')
      patchCpuKernels()
      await setOrThrow('cpu')
      // The cpu backend prints an advert for tfjs-node on first use; the chain above already tried it.
      const cpu = tf.backend() as unknown as { firstUse?: boolean }
      if (cpu.firstUse === true) cpu.firstUse = false
      return
    }
    default:
      throw new Error(`unknown backend ${String(choice)} (expected one of ${CHAIN.join(', ')})`)
  }
}

async function setOrThrow(name: string): Promise<void> {
  // tf.setBackend resolves false (and logs) instead of throwing when initialization fails.
  const ok = await tf.setBackend(name)
  if (!ok) throw new Error(`tf.setBackend('${name}') failed to initialize the backend`)
  await tf.ready()
}

let wasmLoaded = false

async function loadWasm(): Promise<void> {
  if (wasmLoaded) return
  const wasm = await import('@tensorflow/tfjs-backend-wasm')
  // Point the loader at the package's own binaries by file path, so it works whatever the
  // working directory or bundling (the default guess relies on __dirname of the bundle).
  try {
    const require = createRequire(import.meta.url)
    const dir = dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')) + sep + 'dist' + sep
    wasm.setWasmPaths(dir)
  } catch {
    // Resolution failed (unusual layout): keep the package's default lookup.
  }
  patchWasmKernels()
  wasmLoaded = true
}

// ---------------------------------------------------------------------------------------------
// wasm kernel patches

let matMulFix = true
let patched = false

/** Turns the explicit-transpose BatchMatMul on wasm on or off (for benchmarks and tests). */
export function setWasmBatchMatMulFix(enabled: boolean): void {
  matMulFix = enabled
}

export function getWasmBatchMatMulFix(): boolean {
  return matMulFix
}

interface MatMulAttrs {
  transposeA: boolean
  transposeB: boolean
}

/** Above 1 MiB of B, one product goes to the backend's kernel (measured: with 2.3 to 9 MiB of B it ran 1.5 to 3.6 times as fast as ours; up to 512 KiB ours was 1.1 to 1.4 times as fast). */
const SIMD_MAX_B_VALUES = 1 << 18
const simdProducts = new WeakMap<WebAssembly.Memory, MatMulFn | null>()

/**
 * A kernel of ours (`make`: a wasm module instantiated on a memory) on the wasm backend's
 * memory, made once per memory and kept in `cache`; null where it cannot be made.
 */
export function onWasmMemory<F>(backend: BackendWasm, cache: WeakMap<WebAssembly.Memory, F | null>, make: (memory: WebAssembly.Memory) => F | null): F | null {
  const memory = (backend.wasm as unknown as { asm?: { memory?: WebAssembly.Memory } }).asm?.memory
  if (!memory) return null
  let fn = cache.get(memory)
  if (fn === undefined) cache.set(memory, (fn = make(memory)))
  return fn
}

/** Where a tensor's data starts in the wasm backend's memory (bytes). */
export function heapAddress(backend: BackendWasm, t: tf.TensorInfo): number {
  return (backend.dataIdMap.get(t.dataId) as unknown as { memoryOffset: number }).memoryOffset
}

/**
 * a x b (no transposes) with the SIMD kernel of wasm-matmul.ts, on the backend's memory; null
 * where it does not apply (N not a multiple of 4, batch shapes that broadcast otherwise than
 * from 1, empty tensors, no SIMD) or is slower than the backend's own product.
 */
function simdMatMul(backend: BackendWasm, a: tf.TensorInfo, b: tf.TensorInfo): tf.TensorInfo | null {
  if (a.dtype !== 'float32' || b.dtype !== 'float32') return null
  const mm = onWasmMemory(backend, simdProducts, matMulOn)
  if (!mm) return null
  const ar = a.shape.length
  const br = b.shape.length
  if (ar < 2 || br < 2) return null
  const [M, K, N] = [a.shape[ar - 2], a.shape[ar - 1], b.shape[br - 1]]
  if (b.shape[br - 2] !== K || N % 4 !== 0 || M * K * N === 0) return null
  const batchA = tf.util.sizeFromShape(a.shape.slice(0, -2))
  const batchB = tf.util.sizeFromShape(b.shape.slice(0, -2))
  if (batchA !== batchB && batchA !== 1 && batchB !== 1) return null
  const batches = Math.max(batchA, batchB)
  // One large product: the backend's (XNNPACK, packed) is faster once B outgrows the caches.
  if (batches === 1 && M > 1 && K * N > SIMD_MAX_B_VALUES) return null
  const outer = tf.broadcast_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2))
  const out = backend.makeOutput([...outer, M, N], 'float32')
  const at = (t: tf.TensorInfo) => heapAddress(backend, t)
  mm(at(a), at(b), at(out), M, K, N, batches, batchA === 1 ? 0 : 4 * M * K, batchB === 1 ? 0 : 4 * K * N)
  return out
}

/** Registers the wasm kernel replacements; safe to call more than once. */
export function patchWasmKernels(): void {
  if (patched) return
  const original = tf.getKernel(tf.BatchMatMul, 'wasm')
  if (!original) throw new Error('the wasm backend has no BatchMatMul kernel to patch (is @tensorflow/tfjs-backend-wasm loaded?)')
  const transpose = tf.getKernel(tf.Transpose, 'wasm')
  if (!transpose) throw new Error('the wasm backend has no Transpose kernel')
  const originalFunc = original.kernelFunc
  tf.unregisterKernel(tf.BatchMatMul, 'wasm')
  tf.registerKernel({
    kernelName: tf.BatchMatMul,
    backendName: 'wasm',
    // Keep the original setup: it binds the C++ function the original kernel calls.
    setupFunc: original.setupFunc,
    disposeFunc: original.disposeFunc,
    kernelFunc: (args) => {
      const attrs = args.attrs as unknown as MatMulAttrs
      if (!matMulFix) return originalFunc(args)
      const backend = args.backend as BackendWasm
      let { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo }
      const temps: tf.TensorInfo[] = []
      const swapLast2 = (x: tf.TensorInfo): tf.TensorInfo => {
        const r = x.shape.length
        const perm = [...Array(r).keys()]
        perm[r - 2] = r - 1
        perm[r - 1] = r - 2
        const t = transpose.kernelFunc({ inputs: { x }, backend, attrs: { perm } }) as tf.TensorInfo
        temps.push(t)
        return t
      }
      if (attrs.transposeA) a = swapLast2(a)
      if (attrs.transposeB) b = swapLast2(b)
      try {
        const fast = simdMatMul(backend, a, b)
        if (fast) return fast
        return originalFunc({ inputs: { a, b }, backend, attrs: { ...attrs, transposeA: false, transposeB: false } as unknown as tf.NamedAttrMap })
      } finally {
        for (const t of temps) backend.disposeData(t.dataId)
      }
    },
  })
  // Identity (tf.clone, and the engine's copy of every tensor saved for backprop) copies the data
  // on wasm; tensors are immutable, so share it by reference count as Reshape does (and as the
  // cpu backend's Identity does). Saves a copy per saved activation in every training step.
  tf.unregisterKernel(tf.Identity, 'wasm')
  tf.registerKernel({
    kernelName: tf.Identity,
    backendName: 'wasm',
    kernelFunc: (args) => {
      const x = (args.inputs as { x: tf.TensorInfo }).x
      const backend = args.backend as BackendWasm
      if (x.dtype === 'string') return tf.tensor(backend.readSync(x.dataId) as Uint8Array[], x.shape, x.dtype)
      backend.incRef(x.dataId)
      return { dataId: x.dataId, shape: [...x.shape], dtype: x.dtype }
    },
  })
  // GatherV2 on wasm computes every element's address with generic strides (~70 ns per value
  // here, 2 ms for one embedding lookup of the built-in model); row gathers along axis 0, the
  // embedding case, are plain row copies.
  const gather = tf.getKernel(tf.GatherV2, 'wasm')
  if (gather) {
    const gatherFunc = gather.kernelFunc
    tf.unregisterKernel(tf.GatherV2, 'wasm')
    tf.registerKernel({
      kernelName: tf.GatherV2,
      backendName: 'wasm',
      setupFunc: gather.setupFunc,
      disposeFunc: gather.disposeFunc,
      kernelFunc: (args) => {
        const { x, indices } = args.inputs as { x: tf.TensorInfo; indices: tf.TensorInfo }
        const { axis, batchDims } = args.attrs as unknown as { axis: number; batchDims: number }
        const rowGather = (axis === 0 || axis === -x.shape.length) && !batchDims && x.shape.length >= 1
        if (!rowGather || (x.dtype !== 'float32' && x.dtype !== 'int32') || indices.dtype !== 'int32') return gatherFunc(args)
        return gatherRowsWasm(args.backend as BackendWasm, x, indices)
      },
    })
  }
  if (!tf.getKernel(tf.UnsortedSegmentSum, 'wasm')) {
    tf.registerKernel({ kernelName: tf.UnsortedSegmentSum, backendName: 'wasm', kernelFunc: unsortedSegmentSumWasm })
  }
  patched = true
}

/**
 * out[segmentIds[i], ...] += x[i, ...] in JS. It is the gradient of an embedding lookup:
 * O(rows looked up x width) plus zeroing the output, fine for large vocabularies, where a one-hot
 * matmul is O(batch x vocab x width) and the cpu backend's own kernel (one masked sum per
 * segment) takes seconds. Ids outside [0, numSegments) are dropped, as in TensorFlow.
 */
function segmentSumInto(out: Float32Array | Int32Array, x: ArrayLike<number>, ids: ArrayLike<number>, numSegments: number, inner: number): void {
  out.fill(0)
  for (let i = 0; i < ids.length; i++) {
    const s = ids[i]
    if (s < 0 || s >= numSegments) continue
    const src = i * inner
    const dst = s * inner
    for (let j = 0; j < inner; j++) out[dst + j] += x[src + j]
  }
}

interface SegmentSumArgs {
  x: tf.TensorInfo
  segmentIds: tf.TensorInfo
  numSegments: number
  innerShape: number[]
  inner: number
}

function segmentSumArgs(args: { inputs: tf.NamedTensorInfoMap; attrs?: tf.NamedAttrMap }): SegmentSumArgs {
  const { x, segmentIds } = args.inputs as { x: tf.TensorInfo; segmentIds: tf.TensorInfo }
  const numSegments = (args.attrs as unknown as { numSegments: number }).numSegments
  if (x.dtype !== 'float32' && x.dtype !== 'int32') throw new Error(`UnsortedSegmentSum: unsupported dtype ${x.dtype}`)
  const idsRank = segmentIds.shape.length
  for (let i = 0; i < idsRank; i++) {
    if (segmentIds.shape[i] !== x.shape[i]) {
      throw new Error(`UnsortedSegmentSum: segmentIds shape [${segmentIds.shape}] is not a prefix of x shape [${x.shape}]`)
    }
  }
  const innerShape = x.shape.slice(idsRank)
  return { x, segmentIds, numSegments, innerShape, inner: innerShape.reduce((p, d) => p * d, 1) }
}

function unsortedSegmentSumWasm(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const backend = args.backend as BackendWasm
  const { x, segmentIds, numSegments, innerShape, inner } = segmentSumArgs(args)
  const out = backend.makeOutput([numSegments, ...innerShape], x.dtype)
  // Take heap views after the allocation: growing the heap detaches earlier views.
  const o = backend.typedArrayFromHeap(out) as Float32Array | Int32Array
  segmentSumInto(o, backend.typedArrayFromHeap(x), backend.typedArrayFromHeap(segmentIds), numSegments, inner)
  return out
}

function gatherRowsWasm(backend: BackendWasm, x: tf.TensorInfo, indices: tf.TensorInfo): tf.TensorInfo {
  const rows = x.shape[0]
  const inner = x.shape.slice(1)
  const width = inner.reduce((p, d) => p * d, 1)
  const out = backend.makeOutput([...indices.shape, ...inner], x.dtype)
  // Views after the allocation: growing the heap detaches earlier views.
  const o = backend.typedArrayFromHeap(out) as Float32Array | Int32Array
  const xv = backend.typedArrayFromHeap(x) as Float32Array | Int32Array
  const ids = backend.typedArrayFromHeap(indices) as Int32Array
  for (let i = 0; i < ids.length; i++) {
    const r = ids[i]
    if (!(r >= 0 && r < rows)) {
      backend.disposeData(out.dataId)
      throw new Error(`GatherV2: the index value ${r} is not in [0, ${rows - 1}]`)
    }
    o.set(xv.subarray(r * width, (r + 1) * width), i * width)
  }
  return out
}

interface CpuLikeBackend {
  readSync(dataId: object): ArrayLike<number>
  makeTensorInfo(shape: number[], dtype: tf.DataType, values?: Float32Array | Int32Array): tf.TensorInfo
}

function unsortedSegmentSumCpu(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const backend = args.backend as CpuLikeBackend
  const { x, segmentIds, numSegments, innerShape, inner } = segmentSumArgs(args)
  const out = x.dtype === 'int32' ? new Int32Array(numSegments * inner) : new Float32Array(numSegments * inner)
  segmentSumInto(out, backend.readSync(x.dataId), backend.readSync(segmentIds.dataId), numSegments, inner)
  return backend.makeTensorInfo([numSegments, ...innerShape], x.dtype, out)
}

let cpuPatched = false

/** Replaces the cpu backend's UnsortedSegmentSum (seconds per embedding gradient) with the linear-time one. */
export function patchCpuKernels(): void {
  if (cpuPatched) return
  if (tf.getKernel(tf.UnsortedSegmentSum, 'cpu')) tf.unregisterKernel(tf.UnsortedSegmentSum, 'cpu')
  tf.registerKernel({ kernelName: tf.UnsortedSegmentSum, backendName: 'cpu', kernelFunc: unsortedSegmentSumCpu })
  cpuPatched = true
}

function firstLine(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err)
  return msg.split('\n')[0]
}
