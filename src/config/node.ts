import { readFile } from 'node:fs/promises'
import { z } from 'zod'
import { multiaddr } from '@multiformats/multiaddr'
import { parseYamlWith } from './yaml-errors.js'
import { ConfigError } from '../util/errors.js'

/** A node's own settings (config.yaml in its home). Shared settings live in the swarm definition. */

const MultiaddrString = z.string().refine(
  (s) => {
    try {
      multiaddr(s)
      return true
    } catch {
      return false
    }
  },
  { message: 'is not a valid multiaddr (example: /ip4/127.0.0.1/tcp/4001)' },
)

export const BACKENDS = ['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] as const
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const

export const NodeConfigSchema = z
  .object({
    listen: z.array(MultiaddrString).default(['/ip4/0.0.0.0/tcp/4001']).describe('Addresses this node listens on (libp2p multiaddrs).'),
    announce: z.array(MultiaddrString).default([]).describe('Addresses advertised to peers instead of the listen addresses (e.g. behind NAT); empty: automatic.'),
    bootstrap: z
      .array(
        MultiaddrString.refine((s) => s.includes('/p2p/'), {
          message: 'must end with /p2p/<peer id> (the peer id is printed by `coldfusiond status`)',
        }),
      )
      .default([])
      .describe('Peers dialed at start and redialed until they answer, each /ip4/HOST/tcp/PORT/p2p/PEER_ID (any member of the swarm).'),
    mdns: z.boolean().default(true).describe('Discover and dial peers on the local network with mDNS.'),
    maxPeers: z
      .number()
      .int()
      .min(1)
      .default(32)
      .describe('Dial new peers only while connected to fewer than this many; fetches prefer connected holders. Gossip and deltas still reach every member through the peers in between.'),
    data: z
      .object({
        train: z.string().min(1).describe('Training data: JSONL ({"text", "label"} per line) or CSV/TSV with text and label columns; relative to the home. It never leaves the machine.'),
        evalFraction: z.number().min(0.01).max(0.5).default(0.1).describe('Fraction held out (stratified, fixed seed) to report the eval metric.'),
      })
      .strict()
      .describe('Local training data.'),
    api: z
      .object({
        host: z.string().default('127.0.0.1').describe('Address the HTTP API and dashboard bind to. Any address but loopback requires a bearer token.'),
        port: z.number().int().min(0).max(65535).default(0).describe('Port of the HTTP API and dashboard; 0 picks a free port (written to run/api.json).'),
        token: z.string().min(16).optional().describe('Bearer token clients must send when the API is not on loopback; without it, the api-token file in the home is used (keep either mode 600).'),
      })
      .strict()
      .default({ host: '127.0.0.1', port: 0 })
      .describe('Local HTTP API (/status, /rounds, /peers, /metrics) and dashboard (/).'),
    network: z
      .object({
        // A libp2p swarm key file (pnet): connections need the same key on both sides.
        swarmKeyFile: z.string().min(1).optional().describe('libp2p swarm key (pnet) file shared by all members, relative to the home: connections need the same key on both sides.'),
        // Only these peer ids may connect or have their messages accepted (empty: anyone).
        allowPeers: z.array(z.string().regex(/^[1-9A-HJ-NP-Za-km-z]{40,64}$/, 'is not a peer id (12D3KooW...)')).default([]).describe('Only these peer ids may connect or have their gossip accepted; empty: anyone.'),
      })
      .strict()
      .default({ allowPeers: [] })
      .describe('Private swarm: who may connect.'),
    backend: z.enum(BACKENDS).default('auto').describe('TensorFlow.js backend; auto tries tensorflow-gpu (@tensorflow/tfjs-node-gpu), tensorflow (@tensorflow/tfjs-node), wasm, then cpu.'),
    fusionThreads: z
      .number()
      .int()
      .min(1)
      .max(64)
      .optional()
      .describe('Threads fusion uses, its own included (1: none added); default: the number of cores, at most 4. Threads split q8-block fusion of tensors of 262,144 values or more; the bytes are the same for any count.'),
    logLevel: z.enum(LOG_LEVELS).default('info').describe('Level of the JSON log lines on stderr.'),
  })
  .strict()

export type NodeConfig = z.infer<typeof NodeConfigSchema>
/** A config before defaults are filled in. */
export type NodeConfigInput = z.input<typeof NodeConfigSchema>

export function parseNodeConfig(text: string, file: string): NodeConfig {
  return parseYamlWith(text, file, (raw) => NodeConfigSchema.safeParse(raw))
}

export async function loadNodeConfig(file: string): Promise<NodeConfig> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    throw new ConfigError(`${file}: cannot read the node config (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); run \`coldfusiond init --home DIR\` first`)
  }
  return parseNodeConfig(text, file)
}

const q = (s: string): string => JSON.stringify(s)
const list = (xs: string[], indent = '  '): string => (xs.length === 0 ? ' []' : '\n' + xs.map((x) => `${indent}- ${q(x)}`).join('\n'))

/** The config file `init` writes: every option, with a comment saying what it does. */
export function renderNodeConfig(c: NodeConfig): string {
  return `# coldfusiond node configuration. Command-line flags of \`coldfusiond start\` override these.
# Shared settings (model, fusion rule, round policy) are in swarm.json, not here.

# Addresses this node listens on (libp2p multiaddrs).
listen:${list(c.listen)}

# Addresses to advertise to peers instead of the listen addresses (e.g. behind NAT). Empty: automatic.
announce:${list(c.announce)}

# Peers to dial at start, each /ip4/HOST/tcp/PORT/p2p/PEER_ID. Ask a member of the swarm for one.
bootstrap:${list(c.bootstrap)}

# Discover peers on the local network with mDNS (and dial them).
mdns: ${c.mdns}

# Dial new peers only while connected to fewer than this many. In a larger swarm each node keeps
# a few direct peers, and gossip and deltas reach every member through the peers in between.
maxPeers: ${c.maxPeers}

data:
  # Local training data: JSONL lines {"text": ..., "label": ...}, or CSV/TSV with a header row
  # containing "text" and "label". Relative paths are relative to this node's home directory.
  # The data never leaves this machine: only weight deltas do.
  train: ${q(c.data.train)}
  # Fraction held out (seeded, fixed) to report the eval metric.
  evalFraction: ${c.data.evalFraction}

# Local HTTP API and dashboard. Port 0 picks a free port, written to run/api.json. A host other
# than loopback needs a bearer token: api.token here (then keep this file mode 600), or the
# api-token file in the home (\`coldfusiond init --api-host\` writes one).
api:
  host: ${q(c.api.host)}
  port: ${c.api.port}
${c.api.token ? `  token: ${q(c.api.token)}\n` : ''}
# Private swarm: a swarm key file shared by all members (coldfusiond swarm key --out FILE; path
# relative to this home), and/or the only peer ids allowed to connect (empty: anyone).
network:
${c.network.swarmKeyFile ? `  swarmKeyFile: ${q(c.network.swarmKeyFile)}\n` : ''}  allowPeers:${list(c.network.allowPeers, '    ')}

# TensorFlow.js backend: auto tries tensorflow-gpu (@tensorflow/tfjs-node-gpu), tensorflow
# (@tensorflow/tfjs-node), wasm, then cpu.
backend: ${c.backend}

# Threads fusion uses (the node's own included) for q8-block deltas; the result is the same bytes
# for any count. Default: the number of cores, at most 4.
${c.fusionThreads === undefined ? '# fusionThreads: 4' : `fusionThreads: ${c.fusionThreads}`}

# Log level: trace, debug, info, warn, error, fatal or silent.
logLevel: ${c.logLevel}
`
}
