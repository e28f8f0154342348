import * as tf from '@tensorflow/tfjs-core'
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm'

type Inputs = Record<string, tf.TensorInfo>

/**
 * A kernel of ours written once in JS over float32 arrays, registered on the wasm backend (the
 * arrays are views of its memory: no copies) and the cpu backend (its arrays), so both backends
 * compute it with the same code. Other backends (native TensorFlow) keep the tf ops.
 */
export interface JsKernel {
  name: string
  /** The output shapes (float32), from the inputs' shapes; throws on bad inputs. */
  outputs(inputs: Inputs, attrs: tf.NamedAttrMap): number[][]
  /** Fills `out` (zeroed on cpu, uninitialised on wasm) from `ins`, named as the inputs. */
  compute(ins: Record<string, Float32Array>, out: Float32Array[], attrs: tf.NamedAttrMap): void
}

interface CpuLikeBackend {
  readSync(dataId: object): Float32Array
  makeTensorInfo(shape: number[], dtype: tf.DataType, values: Float32Array): tf.TensorInfo
}

function checkFloat32(name: string, inputs: Inputs): Inputs {
  for (const [k, t] of Object.entries(inputs)) if (t.dtype !== 'float32') throw new Error(`${name}: input ${k} is ${t.dtype}, not float32`)
  return inputs
}

/** Registers `k` on `backend` if it is wasm or cpu and not registered yet; true if the backend has it. */
export function ensureJsKernel(k: JsKernel, backend: string, wasmFast?: (b: BackendWasm, inputs: Inputs, out: tf.TensorInfo[], attrs: tf.NamedAttrMap) => boolean): boolean {
  if (tf.getKernel(k.name, backend)) return true
  if (backend === 'wasm') {
    tf.registerKernel({
      kernelName: k.name,
      backendName: 'wasm',
      kernelFunc: ({ inputs: given, backend, attrs }) => {
        const b = backend as BackendWasm
        const inputs = checkFloat32(k.name, given as Inputs)
        const out = k.outputs(inputs, attrs ?? {}).map((shape) => b.makeOutput(shape, 'float32'))
        if (wasmFast?.(b, inputs, out, attrs ?? {})) return out
        // Heap views after the allocations: growing the heap detaches earlier views.
        const view = (t: tf.TensorInfo) => b.typedArrayFromHeap(t) as Float32Array
        k.compute(Object.fromEntries(Object.entries(inputs).map(([n, t]) => [n, view(t)])), out.map(view), attrs ?? {})
        return out
      },
    })
    return true
  }
  if (backend === 'cpu') {
    tf.registerKernel({
      kernelName: k.name,
      backendName: 'cpu',
      kernelFunc: ({ inputs: given, backend, attrs }) => {
        const b = backend as unknown as CpuLikeBackend
        const inputs = checkFloat32(k.name, given as Inputs)
        const shapes = k.outputs(inputs, attrs ?? {})
        const out = shapes.map((s) => new Float32Array(tf.util.sizeFromShape(s)))
        k.compute(Object.fromEntries(Object.entries(inputs).map(([n, t]) => [n, b.readSync(t.dataId)])), out, attrs ?? {})
        return out.map((values, i) => b.makeTensorInfo(shapes[i], 'float32', values))
      },
    })
    return true
  }
  return false
}
