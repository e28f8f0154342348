import { join, resolve, isAbsolute } from 'node:path'

/** The layout of a node's home directory, in one place. */
export class HomeLayout {
  readonly root: string
  constructor(root: string) {
    this.root = resolve(root)
  }
  get identity(): string { return join(this.root, 'identity.key') }
  get config(): string { return join(this.root, 'config.yaml') }
  get swarm(): string { return join(this.root, 'swarm.json') }
  get ledger(): string { return join(this.root, 'ledger.jsonl') }
  get checkpoints(): string { return join(this.root, 'checkpoints') }
  get deltas(): string { return join(this.root, 'deltas') }
  /** This node's task head: local, never shared, kept across rounds (warm start). */
  get head(): string { return join(this.root, 'head.safetensors') }
  get run(): string { return join(this.root, 'run') }
  get apiFile(): string { return join(this.root, 'run', 'api.json') }
  get lockFile(): string { return join(this.root, 'run', 'daemon.pid') }
  /** Bearer token of the HTTP API when it is bound beyond loopback (mode 600). */
  get apiToken(): string { return join(this.root, 'api-token') }
  /** Resolve a path from config.yaml: relative paths are relative to the home. */
  resolve(p: string): string {
    return isAbsolute(p) ? p : join(this.root, p)
  }
}
