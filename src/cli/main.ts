import { Command, Option } from 'commander'
import { resolve } from 'node:path'
import { UserError } from '../util/errors.js'
import { createLogger } from '../util/log.js'
import { BACKENDS, LOG_LEVELS } from '../config/node.js'
import { SWARM_DEFAULTS } from '../config/genesis.js'
import { createSwarmDefinition } from '../config/genesis.js'
import { formatSwarmDefinition, swarmId } from '../config/swarm.js'
import { writeFileAtomic } from '../util/atomic.js'
import { TASKS } from '../data/index.js'
import { initHome } from './init.js'
import { createSwarmKey } from '../p2p/access.js'
import { startCommand } from './start.js'
import { statusCommand } from './status.js'
import { meshCommand } from './mesh.js'
import { registerFeatures, modelNotes } from './features.js'
import { registerExport } from './export.js'
import { registerCheck } from './check.js'
import { registerEval } from './eval.js'
import { registerExperiment } from './experiment.js'
import { registerSim } from './sim.js'
import { collect, densityFor, int, num } from './options.js'
import { fusionOptions, fusionSettings } from './fusion-options.js'
import { createHfSwarmDefinition, HF_SWARM_DEFAULTS } from '../model/hf/swarm.js'
import { CODEC_IDS, type CodecId } from '../codec/ids.js'
import { DEFAULT_DENSITY_PPM } from '../codec/topk.js'

const VERSION = '0.1.0'


function swarmOptions(cmd: Command): Command {
  cmd
    .option('--name <name>', 'swarm name (new swarm only)')
    .option('--min-contributors <n>', `contributors a round needs before it may close (default ${SWARM_DEFAULTS.minContributors})`, int('--min-contributors', 1))
    .option('--contributors-per-round <n>', 'at most this many nodes train each round, drawn afresh each round by hash; the rest fetch, vote and fuse (default: every node)', int('--contributors-per-round', 1))
    .option('--steps <n>', `local training steps per round (default ${SWARM_DEFAULTS.stepsPerRound})`, int('--steps', 1))
    .option('--batch-size <n>', `local batch size (default ${SWARM_DEFAULTS.batchSize})`, int('--batch-size', 1))
    .option('--lr <rate>', `local learning rate (default ${SWARM_DEFAULTS.learningRate}; ${HF_SWARM_DEFAULTS.learningRate} with --model)`, num('--lr'))
    .addOption(new Option('--codec <codec>', `delta compression (default ${SWARM_DEFAULTS.codec})`).choices([...CODEC_IDS]))
    .option('--density-ppm <n>', `top-k codecs: values kept per million (default ${DEFAULT_DENSITY_PPM}, i.e. ${DEFAULT_DENSITY_PPM / 10_000}%)`, int('--density-ppm', 1))
    .option('--collect-timeout <sec>', `seconds a node waits for the others' deltas (default ${SWARM_DEFAULTS.collectTimeoutSec})`, num('--collect-timeout'))
    .option('--vote-timeout <sec>', `seconds a node waits for the others' votes (default ${SWARM_DEFAULTS.voteTimeoutSec})`, num('--vote-timeout'))
    .option('--seed <seed>', 'seed of the round-0 base (default: random)')
  return fusionOptions(cmd)
    .option('--max-delta-norm <norm>', 'bound on each delta\'s L2 norm before fusion', num('--max-delta-norm'))
    .addOption(new Option('--norm-mode <mode>', 'what the norm bound does to a larger delta (default clip)').choices(['clip', 'reject']))
    .option('--model <dir>', 'Hugging Face model directory (config.json, model.safetensors, tokenizer.json): the base of a new swarm, or with --swarm this node\'s copy of the swarm\'s model')
    .option('--max-length <n>', `tokens per training example, special tokens included (default ${SWARM_DEFAULTS.maxLength}; ${HF_SWARM_DEFAULTS.maxLength} with --model)`, int('--max-length', 4))
}

function swarmOpts(o: Record<string, unknown>) {
  return {
    name: o.name as string | undefined,
    minContributors: o.minContributors as number | undefined,
    contributorsPerRound: o.contributorsPerRound as number | undefined,
    stepsPerRound: o.steps as number | undefined,
    batchSize: o.batchSize as number | undefined,
    learningRate: o.lr as number | undefined,
    codec: o.codec as CodecId | undefined,
    densityPpm: densityFor(o.codec as string | undefined, o.densityPpm as number | undefined),
    collectTimeoutSec: o.collectTimeout as number | undefined,
    voteTimeoutSec: o.voteTimeout as number | undefined,
    seed: o.seed as string | undefined,
    ...fusionSettings(o as Parameters<typeof fusionSettings>[0]),
    maxLength: o.maxLength as number | undefined,
    normBound: o.maxDeltaNorm ? { mode: ((o.normMode as string | undefined) ?? 'clip') as 'clip' | 'reject', maxNorm: o.maxDeltaNorm as number } : undefined,
  }
}

export function buildProgram(): Command {
  const program = new Command()
  program
    .name('coldfusiond')
    .description('Peer-to-peer ColD Fusion: nodes fine-tune one shared model on private data, exchange compressed weight deltas over libp2p and agree each round on one bit-identical fused base.')
    .version(VERSION)
    .showHelpAfterError()

  swarmOptions(
    program
      .command('init')
      .description('Create a node home: identity (Ed25519), config.yaml, swarm.json (new, or copied from --swarm), and demo data unless --data is given')
      .requiredOption('--home <dir>', 'node home directory to create')
      .option('--swarm <file>', 'join an existing swarm: its swarm.json (from any member)')
      .option('--data <file>', 'local training data (JSONL, CSV or TSV with text and label); default: generate a demo dataset')
      .addOption(new Option('--demo-task <task>', 'task of the generated demo dataset').choices(TASKS.map((t) => t.name)).default(TASKS[0].name))
      .option('--listen <multiaddr>', 'listen address, repeatable (default /ip4/0.0.0.0/tcp/4001)', collect)
      .option('--bootstrap <multiaddr>', 'peer to join through, /ip4/HOST/tcp/PORT/p2p/PEER_ID, repeatable', collect)
      .option('--no-mdns', 'do not discover peers with mDNS')
      .option('--api-port <port>', 'local HTTP API port (default 0: any free port)', int('--api-port'))
      .option('--api-host <host>', 'local HTTP API host (default 127.0.0.1); any other address also gets a generated bearer token in HOME/api-token')
      .option('--swarm-key <file>', 'private swarm: the swarm key file every member holds (see `swarm key`)')
      .option('--allow-peer <peerId>', 'private swarm: a peer id allowed to connect, repeatable (default: anyone)', collect),
  ).action(async (o) => {
    const r = await initHome({
      home: o.home, swarmFile: o.swarm, swarm: swarmOpts(o), data: o.data, demoTask: o.demoTask,
      listen: o.listen, bootstrap: o.bootstrap, mdns: o.mdns, apiPort: o.apiPort, apiHost: o.apiHost,
      swarmKeyFile: o.swarmKey ? resolve(o.swarmKey) : undefined, allowPeers: o.allowPeer, model: o.model,
    })
    const out = process.stdout
    out.write(`initialised ${r.home}\n`)
    out.write(`  peer id   ${r.peerId}\n`)
    out.write(`  swarm     ${r.swarmId} (${r.createdSwarm ? 'new swarm; give its swarm.json to the other members' : 'joined'})\n`)
    if (r.model) out.write(`  model     ${r.model.dir} (${r.def.model.architecture.model_type}, base ${r.def.model.base.hash.slice(0, 12)}${modelNotes(r.model)})\n`)
    if (r.demoData) out.write(`  data      ${r.demoData.file} (generated demo task "${r.demoData.task}", ${r.demoData.examples} examples)\n`)
    out.write(`  config    ${resolve(r.home, 'config.yaml')}\n`)
    if (r.apiTokenFile) out.write(`  api token ${r.apiTokenFile} (the API on ${r.config.api.host} needs it as a bearer token)\n`)
    out.write(`next: coldfusiond start --home ${o.home}\n`)
  })

  program
    .command('start')
    .description('Run a node: join the swarm, train on local data and take part in rounds until stopped (SIGINT/SIGTERM stop it cleanly). Logs are JSON lines on stderr.')
    .requiredOption('--home <dir>', 'node home directory (made by init)')
    .option('--listen <multiaddr>', 'listen address, repeatable (overrides config)', collect)
    .option('--bootstrap <multiaddr>', 'peer to join through, repeatable (overrides config)', collect)
    .option('--data <file>', 'local training data file (overrides config)')
    .option('--api-port <port>', 'local HTTP API port (overrides config)', int('--api-port'))
    .option('--api-host <host>', 'local HTTP API host (overrides config)')
    .option('--no-mdns', 'do not discover peers with mDNS (overrides config)')
    .addOption(new Option('--backend <name>', 'TensorFlow.js backend (overrides config)').choices([...BACKENDS]))
    .addOption(new Option('--log-level <level>', 'log level (overrides config)').choices([...LOG_LEVELS]))
    .option('--rounds <n>', 'stop training after this many committed rounds (keeps serving peers, and takes the swarm\'s base for those rounds if it ended them on another, until stopped)', int('--rounds', 1))
    .action(async (o) => {
      process.exitCode = await startCommand({
        home: o.home, listen: o.listen, bootstrap: o.bootstrap, data: o.data, apiPort: o.apiPort, apiHost: o.apiHost,
        mdns: o.mdns === false ? false : undefined, backend: o.backend, logLevel: o.logLevel, rounds: o.rounds,
      })
    })

  program
    .command('status')
    .description('Show what a node is doing: peer id, swarm, last committed round and base hash, phase, peers (from its API if running, else from its home)')
    .requiredOption('--home <dir>', 'node home directory')
    .option('--json', 'print one JSON object')
    .action(async (o) => {
      process.exitCode = await statusCommand(o.home, Boolean(o.json))
    })

  fusionOptions(program
    .command('mesh')
    .description('Run a local swarm: N node processes on loopback TCP, each with its own generated task, for R rounds; print a per-round table; exit 0 only if all nodes agreed on every base')
    .option('--nodes <n>', 'number of nodes', int('--nodes', 1), 3)
    .option('--rounds <n>', 'number of rounds', int('--rounds', 1), 3)
    .option('--dir <dir>', 'directory for the node homes (default: a new temporary directory)')
    .option('--contributors-per-round <n>', 'at most this many nodes train each round, drawn afresh each round by hash; the rest fetch, vote and fuse (default: every node)', int('--contributors-per-round', 1))
    .option('--steps <n>', `local training steps per round (default ${SWARM_DEFAULTS.stepsPerRound})`, int('--steps', 1))
    .option('--examples <n>', 'generated examples per node (default 1200)', int('--examples', 20))
    .option('--timeout <sec>', 'give up after this many seconds', int('--timeout', 10), 1800)
    .option('--json', 'print one JSON object at the end instead of the table')
    .option('--dashboard', 'print the address of node-0\'s live dashboard as the nodes start'))
    .action(async (o) => {
      const log = createLogger({ name: 'mesh' })
      process.exitCode = await meshCommand({
        nodes: o.nodes, rounds: o.rounds, dir: o.dir, steps: o.steps, examples: o.examples, timeoutSec: o.timeout, json: Boolean(o.json), dashboard: Boolean(o.dashboard), log,
        ...fusionSettings(o),
      })
    })

  const swarm = program.command('swarm').description('Swarm definitions')
  swarmOptions(
    swarm
      .command('create')
      .description('Write a new swarm definition (the shared settings every member needs) and print its id')
      .requiredOption('--out <file>', 'where to write swarm.json'),
  ).action(async (o) => {
    const { def } = o.model ? await createHfSwarmDefinition(o.model, swarmOpts(o)) : createSwarmDefinition(swarmOpts(o))
    await writeFileAtomic(o.out, formatSwarmDefinition(def))
    process.stdout.write(`${swarmId(def)}\n`)
  })
  swarm
    .command('key')
    .description('Write a new swarm key (libp2p pnet pre-shared key) for a private swarm; give the same file to every member and set network.swarmKeyFile in their config.yaml')
    .requiredOption('--out <file>', 'where to write the key (mode 600)')
    .action(async (o) => {
      await createSwarmKey(o.out)
      process.stdout.write(`wrote ${o.out}\n`)
    })
  registerFeatures(program)
  registerExport(program)
  registerCheck(program)
  registerEval(program)
  registerExperiment(program)
  registerSim(program)
  return program
}

export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv)
  } catch (err) {
    if (err instanceof UserError) {
      process.stderr.write(`coldfusiond: ${err.message}\n`)
      process.exitCode = 2
    } else {
      process.stderr.write(`coldfusiond: unexpected error: ${(err as Error).stack ?? err}\n`)
      process.exitCode = 1
    }
  }
}
