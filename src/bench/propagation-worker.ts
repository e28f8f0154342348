import { fork, type ChildProcess } from 'node:child_process'
import { availableParallelism } from 'node:os'
import { fileURLToPath } from 'node:url'
import { childMain } from './child.js'
import { LinkNetwork } from './links.js'
import type { NodeCommand, NodeReply } from './propagation-node.js'

/**
 * Runs one propagation scenario with every libp2p node in its own process (propagation-node.ts),
 * as on separate machines: each node's noise, yamux and checks run on their own event loop, and
 * the OS spreads the processes over the cores. The CPU time of every node process is measured
 * over each repeat, so the result also says how much CPU one copy costs.
 */

export interface PropagationJob {
  /** Swarm sizes: each scenario runs on the first n nodes of one network of max(nodes). */
  nodes: number[]
  payloadBytes: number
  repeats: number
  /** Each node in its own network namespace behind a link of this many Mbit/s each way (LinkNetwork); default TCP loopback. */
  linkMbit?: number
  /** Also time a round in which every node contributes (default true). */
  rounds?: boolean
}

export interface PropagationResult {
  nodes: number
  /** 'single': one transfer between two nodes; 'one': one delta to all; 'all': every node's delta to all (a round). */
  scenario: 'single' | 'one' | 'all'
  payloadBytes: number
  /** Best repeat: from announce (for 'single', the fetch request) to every node verified. */
  seconds: number
  /** CPU seconds (user + system) of the participating node processes in that repeat. */
  cpuSeconds: number
  /** Delta bytes each node downloaded / uploaded in that repeat (content protocol only). */
  downloaded: number[]
  uploaded: number[]
  cores: number
}

class NodeProcess {
  private readonly pending: { resolve: (r: NodeReply) => void; reject: (e: Error) => void }[] = []
  readonly child: ChildProcess

  /** `exec`: a command prefix to run the node under (e.g. `ip netns exec NS`). */
  constructor(exec?: { file: string; args: string[] }) {
    const script = fileURLToPath(new URL('./propagation-node.js', import.meta.url))
    this.child = fork(script, [], {
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      ...(exec ? { execPath: exec.file, execArgv: [...exec.args, process.execPath] } : {}),
    })
    this.child.on('message', (r: NodeReply) => {
      const p = this.pending.shift()
      if (r.t === 'error') p?.reject(new Error(r.message))
      else p?.resolve(r)
    })
    this.child.on('exit', (code) => {
      for (const p of this.pending.splice(0)) p.reject(new Error(`bench node exited with ${code}`))
    })
  }

  call<T extends NodeReply['t']>(c: NodeCommand, expect: T): Promise<Extract<NodeReply, { t: T }>> {
    return new Promise((resolve, reject) => {
      this.pending.push({
        resolve: (r) => (r.t === expect ? resolve(r as Extract<NodeReply, { t: T }>) : reject(new Error(`bench node replied ${r.t}, expected ${expect}`))),
        reject,
      })
      this.child.send(c)
    })
  }

  async stop(): Promise<void> {
    const exited = new Promise((r) => this.child.once('exit', r))
    if (this.child.exitCode === null) {
      await Promise.race([this.call({ t: 'stop' }, 'ok').catch(() => {}), new Promise((r) => setTimeout(r, 5000))])
      const t = setTimeout(() => this.child.kill('SIGKILL'), 5000)
      await exited
      clearTimeout(t)
    }
  }
}

async function run(job: PropagationJob): Promise<PropagationResult[]> {
  const max = Math.max(2, ...job.nodes)
  const net = job.linkMbit ? new LinkNetwork(max, job.linkMbit) : undefined
  let procs: NodeProcess[] = []
  try {
    net?.setup()
    procs = Array.from({ length: max }, (_, i) => new NodeProcess(net?.execIn(i)))
    const listen = (i: number) => `/ip4/${net ? net.addr(i) : '127.0.0.1'}/tcp/0`
    const ready = await Promise.all(procs.map((p, i) => p.call({ t: 'init', index: i, payloadBytes: job.payloadBytes, listen: listen(i) }, 'ready')))
    await Promise.all(procs.map((p, i) => p.call({ t: 'dial', addrs: ready.slice(0, i).map((r) => r.addr) }, 'ok')))
    await Promise.all(procs.map((p) => p.call({ t: 'subs', peers: max - 1 }, 'ok')))
    // Let gossipsub build its mesh (heartbeat: 1 s) before anything is timed.
    await new Promise((r) => setTimeout(r, 1500))
    let round = 0
    const scenario = async (scenario: PropagationResult['scenario'], n: number, repeats: number): Promise<PropagationResult> => {
      const part = procs.slice(0, n)
      const authors = scenario === 'all' ? part.map((_, i) => i) : [0]
      let payloadBytes = 0
      let best: Pick<PropagationResult, 'seconds' | 'cpuSeconds' | 'downloaded' | 'uploaded'> | undefined
      for (let rep = 0; rep < repeats; rep++) {
        // Fresh content ids each time (the round is in the payload header).
        const prepared = await Promise.all(part.map((p) => p.call({ t: 'prepare', rep: round, authors }, 'prepared')))
        payloadBytes = Math.max(...prepared.map((r) => r.bytes))
        let seconds: number
        if (scenario === 'single') {
          await part[0].call({ t: 'go', expect: 1, items: [] }, 'done')
          seconds = (await part[1].call({ t: 'fetch', from: ready[0].id, author: 0, rep: round }, 'done')).seconds
        } else {
          const items = authors.map((a) => ({ id: prepared[a].id!, author: a, holder: ready[a].id }))
          const t0 = performance.now()
          await Promise.all(part.map((p) => p.call({ t: 'go', expect: authors.length, items }, 'done')))
          seconds = (performance.now() - t0) / 1000
        }
        round++
        const stats = await Promise.all(part.map((p) => p.call({ t: 'stats' }, 'stats')))
        if (!best || seconds < best.seconds) {
          best = { seconds, cpuSeconds: stats.reduce((a, s) => a + s.cpuSeconds, 0), downloaded: stats.map((s) => s.bytesIn), uploaded: stats.map((s) => s.bytesOut) }
        }
      }
      return { nodes: n, scenario, payloadBytes, ...best!, cores: availableParallelism() }
    }
    // Warm every process's JIT on the fetch path first (untimed), so repeats compare like with like.
    await scenario('one', max, 1)
    const out = [await scenario('single', 2, Math.max(3, job.repeats))]
    for (const n of job.nodes) {
      out.push(await scenario('one', n, job.repeats))
      if (job.rounds !== false) out.push(await scenario('all', n, 1))
    }
    return out
  } finally {
    await Promise.all(procs.map((p) => p.stop()))
    net?.teardown()
  }
}

childMain(run)
