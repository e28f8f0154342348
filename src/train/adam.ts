import * as tf from '@tensorflow/tfjs-core'
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm'
import { heapAddress, onWasmMemory } from '../model/backend.js'
import { ensureJsKernel, type JsKernel } from '../model/js-kernel.js'
import { adamOn, type AdamFn } from './wasm-adam.js'

/** The float32 constants of one step: beta1, 1 - beta1, beta2, 1 - beta2, 1 / sqrt(bias correction 2), eps, lr / bias correction 1. */
export interface AdamScalars {
  b1: number
  c1: number
  b2: number
  c2: number
  inv: number
  eps: number
  step: number
}

/**
 * One variable's update in one kernel (wasm: SIMD, wasm-adam.ts; cpu: adamUpdateInto; others
 * keep the tf ops): the same float32 operations, in the same order, as the unfused tf ops below,
 * so the same bits, with no intermediate tensors. Unfused, it is 10 kernels per variable.
 */
export const ADAM_UPDATE = 'ColdFusionAdamUpdate'

let fusedAdam = true

/** Turns the fused update off or on (for tests that compare the two). */
export function setFusedAdam(enabled: boolean): void {
  fusedAdam = enabled
}

const simdAdam = new WeakMap<WebAssembly.Memory, AdamFn | null>()

/** The inputs must be float32 tensors of one shape. */
function sameShape(inputs: Record<string, tf.TensorInfo>): number[] {
  const { x, m, v, g } = inputs as Record<'x' | 'm' | 'v' | 'g', tf.TensorInfo>
  for (const t of [m, v, g]) {
    if (!tf.util.arraysEqual(t.shape, x.shape)) throw new Error(`${ADAM_UPDATE}: inputs must be float32 of one shape, got [${x.shape}] and [${t.shape}]`)
  }
  return [...x.shape]
}

const adamKernel: JsKernel = {
  name: ADAM_UPDATE,
  outputs: (inputs) => {
    const shape = sameShape(inputs)
    return [shape, shape, shape]
  },
  compute: (ins, out, attrs) => adamUpdateInto(ins.x, ins.m, ins.v, ins.g, out as [Float32Array, Float32Array, Float32Array], attrs as unknown as AdamScalars),
}

/** On wasm, the SIMD kernel (wasm-adam.ts) where WebAssembly SIMD is available. */
function simdOnWasm(b: BackendWasm, inputs: Record<string, tf.TensorInfo>, out: tf.TensorInfo[], attrs: tf.NamedAttrMap): boolean {
  const simd = onWasmMemory(b, simdAdam, adamOn)
  if (!simd) return false
  const { x, m, v, g } = inputs
  const k = attrs as unknown as AdamScalars
  const at = (t: tf.TensorInfo) => heapAddress(b, t)
  simd(at(x), at(m), at(v), at(g), at(out[0]), at(out[1]), at(out[2]), tf.util.sizeFromShape(x.shape), k.b1, k.c1, k.b2, k.c2, k.inv, k.eps, k.step)
  return true
}

/** Registers ADAM_UPDATE for `backend` if it is wasm or cpu; true if the backend has it. */
export function ensureAdamKernel(backend: string): boolean {
  return ensureJsKernel(adamKernel, backend, simdOnWasm)
}

/** out = updated x, m, v; f is Math.fround: every operation rounded to float32 as a float32 kernel does. */
export function adamUpdateInto(x: Float32Array, m: Float32Array, v: Float32Array, g: Float32Array, out: [Float32Array, Float32Array, Float32Array], k: AdamScalars): void {
  const f = Math.fround
  const [xo, mo, vo] = out
  const { b1, c1, b2, c2, inv, eps, step } = k
  for (let i = 0; i < x.length; i++) {
    const gi = g[i]
    const m2 = f(f(m[i] * b1) + f(gi * c1))
    const v2 = f(f(v[i] * b2) + f(f(gi * gi) * c2))
    const denom = f(f(f(Math.sqrt(v2)) * inv) + eps)
    mo[i] = m2
    vo[i] = v2
    xo[i] = f(x[i] - f(f(m2 / denom) * step))
  }
}

/**
 * Adam as in PyTorch (torch.optim.Adam / AdamW without weight decay: eps added to the
 * bias-corrected sqrt(v)), with the learning rate passed per step so schedules are plain
 * arithmetic. Written here rather than tf.train.adam for that, and for PyTorch's eps placement.
 * The update runs as one kernel per variable on the wasm and cpu backends (ADAM_UPDATE).
 */
export class Adam {
  private readonly m = new Map<string, tf.Variable>()
  private readonly v = new Map<string, tf.Variable>()
  private t = 0

  constructor(
    vars: tf.Variable[],
    private readonly beta1 = 0.9,
    private readonly beta2 = 0.999,
    private readonly eps = 1e-8,
  ) {
    this.vars = new Map(vars.map((x) => [x.name, x]))
    try {
      for (const x of vars) {
        // A variable shares its initial tensor's data and adds a reference: drop ours.
        const z = tf.zerosLike(x)
        this.m.set(x.name, tf.variable(z, false))
        this.v.set(x.name, tf.variable(z, false))
        z.dispose()
      }
    } catch (err) {
      this.dispose()
      throw err
    }
  }

  private readonly vars: Map<string, tf.Variable>

  /** One update from gradients keyed by variable name (missing gradients leave a variable as is). */
  apply(grads: tf.NamedTensorMap, lr: number): void {
    this.t++
    const bc1 = 1 - this.beta1 ** this.t
    const bc2 = 1 - this.beta2 ** this.t
    const k: AdamScalars = {
      b1: Math.fround(this.beta1), c1: Math.fround(1 - this.beta1), b2: Math.fround(this.beta2), c2: Math.fround(1 - this.beta2),
      inv: Math.fround(1 / Math.sqrt(bc2)), eps: Math.fround(this.eps), step: Math.fround(lr / bc1),
    }
    const fused = fusedAdam && ensureAdamKernel(tf.getBackend())
    tf.tidy(() => {
      // Scalars once per step, not once per variable and use (the unfused path).
      const s = fused ? undefined : Object.fromEntries(Object.entries(k).map(([n, x]) => [n, tf.scalar(x)])) as Record<keyof AdamScalars, tf.Scalar>
      for (const [name, g] of Object.entries(grads)) {
        const x = this.vars.get(name)
        if (!x || !g) continue
        const m = this.m.get(name)!
        const v = this.v.get(name)!
        if (fused) {
          const [x2, m2, v2] = tf.engine().runKernel(ADAM_UPDATE, { x, m, v, g }, k as unknown as tf.NamedAttrMap) as tf.Tensor[]
          m.assign(m2)
          v.assign(v2)
          x.assign(x2)
          continue
        }
        const m2 = tf.add(tf.mul(m, s!.b1), tf.mul(g, s!.c1))
        const v2 = tf.add(tf.mul(v, s!.b2), tf.mul(tf.square(g), s!.c2))
        const denom = tf.add(tf.mul(tf.sqrt(v2), s!.inv), s!.eps)
        m.assign(m2)
        v.assign(v2)
        x.assign(tf.sub(x, tf.mul(tf.div(m2, denom), s!.step)))
      }
    })
  }

  dispose(): void {
    for (const x of this.m.values()) x.dispose()
    for (const x of this.v.values()) x.dispose()
    this.m.clear()
    this.v.clear()
  }
}
