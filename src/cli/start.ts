import { HomeLayout } from '../store/home.js'
import { loadNodeConfig, NodeConfigSchema, type NodeConfig } from '../config/node.js'
import { ConfigError } from '../util/errors.js'
import { createLogger } from '../util/log.js'
import { Daemon } from '../daemon/daemon.js'

export interface StartFlags {
  home: string
  listen?: string[]
  bootstrap?: string[]
  data?: string
  apiPort?: number
  apiHost?: string
  backend?: string
  logLevel?: string
  mdns?: boolean
  rounds?: number
}

/** Command-line flags override config.yaml; the merged result is validated like the file. */
export function applyOverrides(base: NodeConfig, f: StartFlags): NodeConfig {
  const merged = {
    ...base,
    ...(f.listen ? { listen: f.listen } : {}),
    ...(f.bootstrap ? { bootstrap: f.bootstrap } : {}),
    ...(f.mdns === false ? { mdns: false } : {}),
    ...(f.backend ? { backend: f.backend } : {}),
    ...(f.logLevel ? { logLevel: f.logLevel } : {}),
    data: { ...base.data, ...(f.data ? { train: f.data } : {}) },
    api: { ...base.api, ...(f.apiPort !== undefined ? { port: f.apiPort } : {}), ...(f.apiHost ? { host: f.apiHost } : {}) },
  }
  const r = NodeConfigSchema.safeParse(merged)
  if (!r.success) {
    throw new ConfigError(r.error.issues.map((i) => `command-line option ${i.path.join('.')}: ${i.message}`).join('\n'))
  }
  return r.data
}

export async function startCommand(f: StartFlags): Promise<number> {
  const L = new HomeLayout(f.home)
  const config = applyOverrides(await loadNodeConfig(L.config), f)
  const log = createLogger({ level: config.logLevel })
  const daemon = new Daemon({ home: L.root, config, log, maxRounds: f.rounds })
  const onSignal = (sig: string): void => daemon.stop(`received ${sig}`)
  process.once('SIGINT', () => onSignal('SIGINT'))
  process.once('SIGTERM', () => onSignal('SIGTERM'))
  await daemon.run()
  return 0
}
