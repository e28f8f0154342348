import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'

/**
 * Separate machines on a shared switch, emulated: one network namespace per node, each with its
 * own address and a veth link to a bridge in a hub namespace, limited to `mbit` each way by a
 * token bucket (tc tbf) at both ends. On loopback every copy competes for the same cores; behind
 * such links the network is the limit, as between labs, so the figures show what the protocol
 * does with each node's uplink. Needs root, `ip` and `tc` (iproute2).
 */
export class LinkNetwork {
  private readonly prefix: string
  private created: string[] = []

  constructor(readonly nodes: number, readonly mbit: number) {
    // Interface names are at most 15 characters: cf<pid>n<i>.
    this.prefix = `cf${process.pid % 100000}`
  }

  /** Why links cannot be set up here, or undefined when they can. */
  static unavailable(): string | undefined {
    if (process.platform !== 'linux') return 'needs Linux network namespaces'
    if (process.getuid?.() !== 0) return 'needs root (ip netns, tc)'
    for (const tool of ['ip', 'tc']) if (!which(tool)) return `needs ${tool} (iproute2)`
    return undefined
  }

  ns(i: number): string {
    return `${this.prefix}-n${i}`
  }

  addr(i: number): string {
    return `10.78.${Math.floor((i + 1) / 250)}.${((i + 1) % 250) + 1}`
  }

  /** `ip`, as a command prefix that runs a program in node i's namespace. */
  execIn(i: number): { file: string; args: string[] } {
    return { file: which('ip')!, args: ['netns', 'exec', this.ns(i)] }
  }

  setup(): void {
    const hub = `${this.prefix}-hub`
    const ip = (...args: string[]) => run('ip', args)
    const tbf = (ns: string, dev: string) => run('ip', ['netns', 'exec', ns, 'tc', 'qdisc', 'add', 'dev', dev, 'root', 'tbf', 'rate', `${this.mbit}mbit`, 'burst', '64kb', 'latency', '50ms'])
    try {
      ip('netns', 'add', hub)
      this.created.push(hub)
      ip('-n', hub, 'link', 'add', 'br0', 'type', 'bridge')
      ip('-n', hub, 'link', 'set', 'br0', 'up')
      for (let i = 0; i < this.nodes; i++) {
        const ns = this.ns(i)
        const [nodeEnd, hubEnd] = [`${this.prefix}n${i}`, `${this.prefix}h${i}`]
        ip('netns', 'add', ns)
        this.created.push(ns)
        ip('link', 'add', nodeEnd, 'type', 'veth', 'peer', 'name', hubEnd)
        ip('link', 'set', nodeEnd, 'netns', ns)
        ip('link', 'set', hubEnd, 'netns', hub)
        ip('-n', hub, 'link', 'set', hubEnd, 'master', 'br0')
        ip('-n', hub, 'link', 'set', hubEnd, 'up')
        ip('-n', ns, 'addr', 'add', `${this.addr(i)}/16`, 'dev', nodeEnd)
        ip('-n', ns, 'link', 'set', nodeEnd, 'up')
        ip('-n', ns, 'link', 'set', 'lo', 'up')
        // Upload at the node's end, download at the hub's end.
        tbf(ns, nodeEnd)
        tbf(hub, hubEnd)
      }
    } catch (err) {
      this.teardown()
      throw err
    }
  }

  /** Deleting a namespace deletes its links. */
  teardown(): void {
    for (const ns of this.created.splice(0).reverse()) {
      try {
        run('ip', ['netns', 'del', ns])
      } catch {
        // Already gone.
      }
    }
  }
}

function which(tool: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin', '/usr/bin', '/bin'])) {
    if (dir && existsSync(`${dir}/${tool}`)) return `${dir}/${tool}`
  }
  return undefined
}

function run(tool: string, args: string[]): void {
  try {
    execFileSync(which(tool) ?? tool, args, { stdio: ['ignore', 'ignore', 'pipe'] })
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim()
    throw new Error(`${tool} ${args.join(' ')}: ${stderr || (err as Error).message}`)
  }
}
