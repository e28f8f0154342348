import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { execFile } from 'node:child_process'
import { cp, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { initHome, writeNodeConfig } from '../src/cli/init.js'
import { loadNodeConfig } from '../src/config/node.js'
import { formatSwarmDefinition, parseSwarmDefinition } from '../src/config/swarm.js'
import { Daemon } from '../src/daemon/daemon.js'
import { TASKS } from '../src/data/index.js'
import { initBody } from '../src/model/init.js'
import { recomputeLineage } from '../src/sim/verify.js'
import { HomeLayout } from '../src/store/home.js'
import { Ledger } from '../src/store/ledger.js'
import { sha256Hex } from '../src/util/hash.js'
import { silentLogger } from '../src/util/log.js'
import { freePorts } from '../src/util/ports.js'
import { encodeDelta, openDelta, payloadDigests } from '../src/codec/index.js'
import { kernelAddress, kernelArena, kernelBytes, releaseKernelBytes } from '../src/codec/kernel-arena.js'
import { deltaNorm, fuseRound, hashTensors, setFusionThreads, fusionThreads, tensorArray, type DeltaInput, type FuseOptions } from '../src/fusion/index.js'
import { helperShare } from '../src/fusion/split.js'
import { helperSharesDone, MIN_SPLIT } from '../src/fusion/threads.js'
import type { TensorMap } from '../src/model/tensors.js'
import { createSwarmDefinition } from '../src/config/genesis.js'
import { fusionPorts } from '../src/daemon/ports.js'
import { decodeSafetensors, encodeSafetensors } from '../src/model/safetensors.js'
import { deltaFileDir, rejected, resealed, seededTensors } from './helpers/payloads.js'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
const execFileP = promisify(execFile)

/** Tensors around the split threshold (and one small one, which is never split). */
const SHAPES = { 'a.big': [MIN_SPLIT + 12_345], 'b.exact': [MIN_SPLIT], 'c.small': [7, 131], 'd.wide': [3, 200_003] }

/** The base as a node holds it (decodeBase): its large tensors in shared memory when fusion has helpers. */
function shareable(base: TensorMap): TensorMap {
  return decodeSafetensors(encodeSafetensors(base), 'base', { alloc: tensorArray }).tensors
}

function inShared(p: Uint8Array): Uint8Array {
  const s = new Uint8Array(new SharedArrayBuffer(p.length))
  s.set(p)
  return s
}

/** The payload copied into the kernel arena, where every thread's kernel reads it in place. */
function inArena(p: Uint8Array): Uint8Array {
  const s = kernelBytes(p.length)
  assert.notEqual(kernelAddress(s), undefined, 'the arena holds the payload')
  s.set(p)
  return s
}

describe('fusion on helper threads', function () {
  this.timeout(300_000)
  const { toFiles, path } = deltaFileDir('cfd-threads-')
  const configured = fusionThreads()
  const base0 = seededTensors(SHAPES, 1, 0.5)
  const baseHash = hashTensors(base0)
  afterEach(() => setFusionThreads(configured))

  function deltas(n: number, blockSize: number): DeltaInput[] {
    return Array.from({ length: n }, (_, k) => {
      const { payload, deltaId } = encodeDelta(seededTensors(SHAPES, 100 + k, 0.01), { codec: 'q8-block', blockSize }, { round: 4, baseHash, examples: 10 + 7 * k })
      return { id: deltaId, payload, examples: 10 + 7 * k }
    })
  }

  /** fuseRound with `threads` threads, the base (and its payloads, if `shared`) in shared memory. */
  function fuseWith(threads: number, inputs: Parameters<typeof fuseRound>[1], opts: FuseOptions = {}): { hash: string; result: TensorMap; helped: number } {
    setFusionThreads(threads)
    const before = helperSharesDone()
    const result = fuseRound(shareable(base0), inputs, { baseHash, verified: true, ...opts })
    return { hash: hashTensors(result), result, helped: helperSharesDone() - before }
  }

  it('gives the same bytes with 1, 2 or 3 threads, from files, shared payloads and payloads in the kernel arena, for every summing rule', () => {
    for (const [n, blockSize] of [[1, 256], [3, 100], [9, 256]] as const) {
      const ds = deltas(n, blockSize)
      const files = toFiles(ds)
      const shared = ds.map((d) => ({ ...d, payload: inShared(d.payload) }))
      const arena = ds.map((d) => ({ ...d, payload: inArena(d.payload) }))
      for (const rule of ['mean', 'weighted-mean', 'task-arithmetic']) {
        const opts: FuseOptions = { rule, params: rule === 'task-arithmetic' ? { scale: 0.7 } : {} }
        const one = fuseWith(1, ds, opts)
        assert.equal(one.helped, 0)
        for (const threads of [2, 3]) {
          for (const [source, inputs] of [['files', files], ['shared payloads', shared], ['payloads in the arena', arena]] as const) {
            const many = fuseWith(threads, inputs, opts)
            assert.equal(many.hash, one.hash, `${n} deltas, blocks of ${blockSize}, ${rule}, ${threads} threads, ${source}`)
            assert.equal(many.helped, threads - 1, `${source}: every helper did its share`)
          }
        }
        // A small piece size moves the cuts, never the bytes.
        assert.equal(fuseWith(2, files, { ...opts, chunk: 1000 }).hash, one.hash)
        assert.equal(fuseWith(2, arena, { ...opts, chunk: 1000 }).hash, one.hash)
        assert.equal(fuseWith(1, arena, opts).hash, one.hash)
      }
      for (const d of arena) releaseKernelBytes(d.payload)
    }
  })

  it('on one thread too, a base\'s large tensors and the result lie in the kernel arena (fused in place), with the bytes of plain arrays', () => {
    setFusionThreads(1)
    const arena = kernelArena() !== null
    if (arena) assert.notEqual(kernelAddress(tensorArray(MIN_SPLIT)), undefined, 'a large tensor is placed in the arena')
    assert.equal(kernelAddress(tensorArray(100)), undefined, 'a small one is a plain array')
    const ds = deltas(3, 256)
    const plain = fuseRound(base0, ds, { baseHash, verified: true })
    const base = shareable(base0)
    const before = helperSharesDone()
    const inPlace = fuseRound(base, ds, { baseHash, verified: true })
    assert.equal(hashTensors(inPlace), hashTensors(plain))
    assert.equal(helperSharesDone(), before, 'no helper took a share')
    for (const [name, t] of [...base, ...inPlace]) {
      if (arena && t.data.length >= MIN_SPLIT) assert.notEqual(kernelAddress(t.data), undefined, `${name} is in the arena`)
    }
  })

  it('float32 deltas are split too: the same bytes with 1, 2 or 3 threads, from files, shared payloads and the arena', () => {
    const ds = Array.from({ length: 9 }, (_, k) => {
      const { payload, deltaId } = encodeDelta(seededTensors(SHAPES, 200 + k, 0.01), { codec: 'f32' }, { round: 4, baseHash, examples: 3 + k })
      return { id: deltaId, payload, examples: 3 + k }
    })
    for (const rule of ['mean', 'weighted-mean']) {
      const one = fuseWith(1, ds, { rule })
      for (const threads of [2, 3]) {
        for (const [source, inputs] of [['files', toFiles(ds)], ['shared payloads', ds.map((d) => ({ ...d, payload: inShared(d.payload) }))], ['payloads in the arena', ds.map((d) => ({ ...d, payload: inArena(d.payload) }))]] as const) {
          const many = fuseWith(threads, inputs, { rule })
          assert.equal(many.hash, one.hash, `${rule}, ${threads} threads, ${source}`)
          assert.equal(many.helped, threads - 1, `${source}: every helper did its share`)
        }
      }
    }
  })

  it('writes into a recycled base in shared memory; payloads helpers cannot read stay on the calling thread', () => {
    const ds = deltas(4, 256)
    const expected = fuseWith(1, ds).hash
    const first = fuseWith(2, toFiles(ds))
    assert.ok([...first.result.values()].some((t) => t.data.buffer instanceof SharedArrayBuffer), 'large results are shared, so the next fusion can split')
    const again = fuseWith(2, toFiles(ds), { into: first.result })
    assert.equal(again.hash, expected)
    assert.equal(again.result.get('a.big')!.data, first.result.get('a.big')!.data, 'written into the given arrays')
    // Bases and results in the kernel arena are views of one memory: only overlapping ones are refused.
    const held = shareable(base0)
    assert.notEqual(kernelAddress(held.get('a.big')!.data), undefined, 'a large base tensor lies in the arena')
    assert.throws(() => fuseRound(held, toFiles(ds), { baseHash, verified: true, into: held }), /shares memory with the base/)
    // The same bytes seen through another buffer object of the arena's memory (one it gives after growing), and a tensor on a payload's bytes.
    const arena = kernelArena()!
    arena.memory.grow(1)
    const grown = arena.buffer()
    const big = held.get('a.big')!.data
    assert.notEqual(grown, big.buffer, 'another buffer object of the same memory')
    const intoWith = (name: string, data: Float32Array) => new Map([...first.result].map(([k, t]) => [k, k === name ? { shape: [data.length], data } : t]))
    const alias = intoWith('a.big', new Float32Array(grown, kernelAddress(big)! + 4000, big.length))
    assert.throws(() => fuseRound(held, toFiles(ds), { baseHash, verified: true, into: alias }), /tensor a\.big shares memory with the base/)
    const payloads = ds.map((d) => ({ ...d, payload: new Uint8Array(d.payload) }))
    const onPayload = intoWith('c.small', new Float32Array(payloads[2].payload.buffer, 0, 7 * 131))
    assert.throws(() => fuseRound(held, payloads, { baseHash, verified: true, into: onPayload }), /tensor c\.small shares memory with the base or a payload/)
    const plain = fuseWith(2, ds)
    assert.equal(plain.hash, expected)
    assert.equal(plain.helped, 0, 'payloads in ordinary memory are not readable by helpers')
  })

  it("rejects a bad value in a helper's share, or a damaged file a helper checks, as one thread does", () => {
    const ds = deltas(3, 256)
    // The last value of the last tensor (d.wide) is past every cut: a helper reads it.
    const p = new Uint8Array(ds[1].payload)
    p[p.length - 9] = 0x80
    const bad = resealed(p)
    const id = payloadDigests(bad).id
    const inputs = [ds[0], { id, payload: bad, examples: ds[1].examples }, ds[2]]
    for (const threads of [1, 2, 3]) {
      setFusionThreads(threads)
      const e = rejected(() => fuseRound(shareable(base0), toFiles(inputs), { baseHash, verified: true }), 'non-canonical')
      assert.equal(e.deltaId, id, `${threads} threads`)
      const s = rejected(() => fuseRound(shareable(base0), inputs.map((d) => ({ ...d, payload: inShared(d.payload) })), { baseHash, verified: true }), 'non-canonical')
      assert.equal(s.deltaId, id)
      const a = rejected(() => fuseRound(shareable(base0), inputs.map((d) => ({ ...d, payload: inArena(d.payload) })), { baseHash, verified: true }), 'non-canonical')
      assert.equal(a.deltaId, id, `${threads} threads, read in place`)
    }
    // A changed byte that is still a valid value: only the file's hash tells. With 2 threads,
    // file 1 (in id order) is checked by the helper.
    const files = toFiles(ds)
    const sorted = [...files].sort((a, b) => (a.id < b.id ? -1 : 1))
    const damaged = new Uint8Array(ds.find((d) => d.id === sorted[1].id)!.payload)
    damaged[damaged.length - 100] ^= 4
    writeFileSync(sorted[1].file, damaged)
    for (const threads of [1, 2]) {
      setFusionThreads(threads)
      const e = rejected(() => fuseRound(shareable(base0), files, { baseHash, verified: true }), 'hash-mismatch')
      assert.equal(e.deltaId, sorted[1].id)
    }
    rejected(() => fuseRound(shareable(base0), [files[0], { ...files[2], file: path('absent.cfd') }], { baseHash, verified: true }), 'not-found')
  })

  it("rejects a bad block scale in a helper's share or the caller's, naming the same delta and block as one thread does", () => {
    const ds = deltas(3, 256)
    // d.wide, the last tensor: its scales, then its values, then the 8-byte trailer.
    const m = SHAPES['d.wide'][0] * SHAPES['d.wide'][1]
    const nb = Math.ceil(m / 256)
    const scalesAt = ds[1].payload.length - 8 - m - 4 * nb
    // Block 0 lies in a helper's share (helpers fuse the start of a split tensor), the last block in the caller's.
    for (const [block, bytes, reason] of [[0, [0, 0, 0x80, 0xbf], 'malformed'], [nb - 1, [0, 0, 0xc0, 0x7f], 'non-finite']] as const) {
      const p = new Uint8Array(ds[1].payload)
      p.set(bytes, scalesAt + 4 * block)
      const bad = resealed(p)
      const id = payloadDigests(bad).id
      const inputs = [ds[0], { id, payload: bad, examples: ds[1].examples }, ds[2]]
      for (const threads of [1, 2, 3]) {
        setFusionThreads(threads)
        for (const [where, list] of [['files', toFiles(inputs)], ['shared', inputs.map((d) => ({ ...d, payload: inShared(d.payload) }))], ['arena', inputs.map((d) => ({ ...d, payload: inArena(d.payload) }))]] as const) {
          const e = rejected(() => fuseRound(shareable(base0), list, { baseHash, verified: true }), reason)
          assert.equal(e.deltaId, id, `block ${block}, ${threads} threads, ${where}`)
          assert.match(e.message, new RegExp(`block ${block} has an invalid scale`), `${threads} threads, ${where}`)
        }
      }
    }
  })

  it("the daemon's fusion port: its bases are shared, so fusing the store's files uses the helpers, with the same bytes", () => {
    const { def } = createSwarmDefinition({ codec: 'q8-block', seed: 'threads' })
    const ds = deltas(5, def.compression.blockSize ?? 256)
    const files = toFiles(ds)
    setFusionThreads(1)
    const expected = hashTensors(fuseRound(base0, ds, { baseHash, verified: true }))
    setFusionThreads(2)
    const port = fusionPorts(def, base0)
    const base = port.decodeBase(encodeSafetensors(base0))
    assert.ok(base.get('a.big')!.data.buffer instanceof SharedArrayBuffer)
    assert.ok(!(base.get('c.small')!.data.buffer instanceof SharedArrayBuffer), 'small tensors stay in ordinary memory')
    const before = helperSharesDone()
    const next = port.fuse(base, files, baseHash, undefined)
    assert.equal(hashTensors(next), expected)
    // The next round fuses into the base it replaced, as the runner does.
    assert.equal(hashTensors(port.fuse(base, files, baseHash, port.decodeBase(encodeSafetensors(base0)))), expected)
    assert.equal(helperSharesDone() - before, 2)
  })

  it('a norm bound: rejected deltas leave the rest split; a clipped delta keeps the fusion on the calling thread; the same bytes', () => {
    const ds = deltas(3, 256)
    const files = toFiles(ds)
    const norms = ds.map((d) => deltaNorm(openDelta(d.payload, { layout: base0 })))
    const between = (Math.min(...norms) + Math.max(...norms)) / 2
    for (const mode of ['clip', 'reject'] as const) {
      const opts: FuseOptions = { normBound: { mode, maxNorm: between } }
      const one = fuseWith(1, ds, opts)
      const two = fuseWith(2, files, opts)
      assert.equal(two.hash, one.hash, mode)
      assert.equal(two.helped, mode === 'reject' ? 1 : 0, mode)
    }
  })

  it('when the helper thread cannot start, the problem is known before fusion, which gives the same bytes on one thread', async () => {
    // A copy of the build without the helper's script, in a process of its own.
    const dir = await mkdtemp(join(tmpdir(), 'cfd-no-helper-'))
    try {
      const ds = deltas(3, 256)
      const files = toFiles(ds)
      setFusionThreads(1)
      const expected = hashTensors(fuseRound(base0, ds, { baseHash, verified: true }))
      await cp(join(ROOT, 'dist', 'src'), join(dir, 'src'), { recursive: true })
      await rm(join(dir, 'src', 'fusion', 'thread-worker.js'))
      await cp(join(ROOT, 'package.json'), join(dir, 'package.json'))
      await symlink(join(ROOT, 'node_modules'), join(dir, 'node_modules'))
      await writeFile(join(dir, 'base.safetensors'), encodeSafetensors(base0))
      await writeFile(join(dir, 'main.js'), `
        import { readFileSync } from 'node:fs'
        import { fuseRound, hashTensors, setFusionThreads, startFusionHelpers, fusionHelperProblem, tensorArray } from './src/fusion/index.js'
        import { decodeSafetensors } from './src/model/safetensors.js'
        setFusionThreads(2)
        startFusionHelpers()
        await new Promise((r) => setTimeout(r, 500))
        const problem = fusionHelperProblem()
        const base = decodeSafetensors(readFileSync('base.safetensors'), 'base', { alloc: tensorArray }).tensors
        const t0 = Date.now()
        const hash = hashTensors(fuseRound(base, ${JSON.stringify(files)}, { baseHash: '${baseHash}', verified: true }))
        console.log(JSON.stringify({ problem, hash, seconds: (Date.now() - t0) / 1000 }))
      `)
      const { stdout } = await execFileP(process.execPath, ['main.js'], { cwd: dir })
      const out = JSON.parse(stdout) as { problem?: string; hash: string; seconds: number }
      assert.match(out.problem ?? '', /fusion helper thread failed \(.*thread-worker\.js.*\); fusing on one thread/)
      assert.equal(out.hash, expected)
      assert.ok(out.seconds < 20, `fusion did not wait for the helper (${out.seconds} s)`)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('refuses a thread count that is not 1 to 64', () => {
    for (const bad of [0, -1, 1.5, 65, Number.NaN]) assert.throws(() => setFusionThreads(bad), /from 1 to 64/)
  })

  it('gives every thread the same number of values: the caller, which fuses the small tensors whole, takes less of the split ones', () => {
    const work = (tensors: [number, boolean][], t: number) => {
      const h = helperShare(tensors, t)
      const split = tensors.reduce((a, [n, s]) => a + (s ? n : 0), 0)
      const whole = tensors.reduce((a, [n, s]) => a + (s ? 0 : n), 0)
      return { helper: h * split, caller: whole + (1 - (t - 1) * h) * split }
    }
    // Only split tensors: even shares.
    assert.equal(helperShare([[1000, true], [3000, true]], 2), 0.5)
    // 1000 small values and 3000 split ones on 2 threads: 2000 each.
    assert.deepEqual(work([[1000, false], [3000, true]], 2), { helper: 2000, caller: 2000 })
    const three = work([[600, false], [3000, true], [600, true]], 3)
    assert.ok(Math.abs(three.helper - 1400) < 1e-9 && Math.abs(three.caller - 1400) < 1e-9, JSON.stringify(three))
    // Small tensors worth more than a thread's share: the helpers take all the split ones.
    assert.equal(helperShare([[5000, false], [1000, true]], 2), 1)
    assert.equal(helperShare([[5000, false], [1000, true]], 3), 0.5)
    // One thread, or nothing to split.
    assert.equal(helperShare([[10, true]], 1), 1)
    assert.equal(helperShare([[10, false]], 2), 0.5)
  })
})

describe('a real swarm whose fusion is split across threads', function () {
  this.timeout(300_000)
  const configured = fusionThreads()
  after(() => setFusionThreads(configured))

  it('two daemons with a 524K-value embedding fuse on 2 threads each, agree, and one thread recomputes the same hashes', async () => {
    const ROUNDS = 2
    const dir = await mkdtemp(join(tmpdir(), 'cfd-threads-swarm-'))
    // The built-in model with a larger hashed vocabulary: its embedding (8192 x 64) is split.
    const { def: small } = createSwarmDefinition({ seed: 'helpers', minContributors: 2, stepsPerRound: 2, batchSize: 8, collectTimeoutSec: 60, voteTimeoutSec: 10 })
    const architecture = { ...small.model.architecture, vocab_size: 8192 }
    const genesis = encodeSafetensors(initBody(architecture, 'helpers'))
    const def = parseSwarmDefinition({ ...small, model: { ...small.model, architecture, base: { ...small.model.base, hash: sha256Hex(genesis) } } }, 'swarm.json')
    assert.ok(decodeSafetensors(genesis, 'genesis').tensors.get('embeddings.word_embeddings.weight')!.data.length >= MIN_SPLIT)
    const swarmFile = join(dir, 'swarm.json')
    await writeFile(swarmFile, formatSwarmDefinition(def))
    const ports = await freePorts(2)
    const nodes = []
    for (let i = 0; i < 2; i++) {
      const home = join(dir, `node-${i}`)
      const r = await initHome({ home, swarmFile, demoTask: TASKS[i].name, demoSeed: 5 + i, demoExamples: 80, mdns: false, listen: [`/ip4/127.0.0.1/tcp/${ports[i]}`] })
      nodes.push({ home, port: ports[i], addr: `/ip4/127.0.0.1/tcp/${ports[i]}/p2p/${r.peerId}` })
    }
    for (const n of nodes) {
      await writeNodeConfig(n.home, {
        listen: [`/ip4/127.0.0.1/tcp/${n.port}`], bootstrap: nodes.filter((x) => x !== n).map((x) => x.addr), mdns: false,
        data: { train: 'data/train.jsonl', evalFraction: 0.2 }, logLevel: 'warn', fusionThreads: 2,
      })
    }
    setFusionThreads(1)
    const before = helperSharesDone()
    const daemons = await Promise.all(nodes.map(async (n) => new Daemon({ home: n.home, config: await loadNodeConfig(new HomeLayout(n.home).config), log: silentLogger(), maxRounds: ROUNDS })))
    // A daemon keeps serving its peers after its last round, until stopped.
    const runs = daemons.map((d) => d.run())
    try {
      const failed = Promise.race(runs.map((p) => p.then(() => { throw new Error('a daemon stopped early') })))
      const done = (async () => {
        while (!daemons.every((d) => (d.status?.round ?? 0) >= ROUNDS)) await new Promise((r) => setTimeout(r, 200))
      })()
      await Promise.race([done, failed])
      assert.equal(fusionThreads(), 2, 'the daemons applied fusionThreads from config.yaml')
      assert.ok(helperSharesDone() - before >= 2 * ROUNDS, `every fusion used its helper (${helperSharesDone() - before} shares)`)
      const ledgers = await Promise.all(nodes.map(async (n) => (await Ledger.open(new HomeLayout(n.home).ledger, def.model.base.hash)).all()))
      assert.equal(ledgers[0].length, ROUNDS)
      assert.deepEqual(ledgers[1].map((e) => e.hash), ledgers[0].map((e) => e.hash), 'both nodes committed the same bases')
      // The recomputation holds the payloads in ordinary memory: one thread, no helpers.
      setFusionThreads(1)
      assert.ok(await recomputeLineage(def, nodes[0].home, ledgers[0]), 'one thread recomputes every round to the same hash')
    } finally {
      for (const d of daemons) d.stop('test finished')
      await Promise.allSettled(runs)
      await rm(dir, { recursive: true, force: true })
    }
  })
})
