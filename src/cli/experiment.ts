import { Command, Option } from 'commander'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { REAL_TASKS } from '../bench/tasks.js'
import { runExperiment } from '../experiment/runner.js'
import { UserError } from '../util/errors.js'
import { collect, densityFor, int, num } from './options.js'
import { CODEC_IDS } from '../codec/ids.js'
import { DEFAULT_DENSITY_PPM } from '../codec/topk.js'

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..')

export function registerExperiment(program: Command): void {
  program
    .command('experiment')
    .description('The ColD Fusion experiment on real tasks: initial base, fused base of a real local swarm (seen), leave-one-task-out swarms (unseen), a central multitask reference and other fusion rules, each evaluated by linear probe, few-example and full-data fine-tuning over several seeds; writes report.md, a plot, summary.json and every evaluated base')
    .option('--data <dir>', 'task directory (TASK/train.jsonl, test.jsonl, labels.json)', join(REPO, '../shared/data'))
    .option('--out <dir>', 'new output directory', join(REPO, 'experiment-out', new Date().toISOString().replace(/[:.]/g, '-')))
    .option('--tasks <list>', 'comma-separated task names', REAL_TASKS.join(','))
    .option('--rounds <n>', 'swarm rounds', int('--rounds', 1), 3)
    .option('--node-train-n <n>', 'training examples per node (seeded sample; 0: the whole train set)', int('--node-train-n', 0), 1000)
    .option('--steps <n>', 'local steps per round (default: one epoch of the node\'s examples)', int('--steps', 1))
    .option('--batch-size <n>', 'local batch size', int('--batch-size', 1), 16)
    .option('--lr <rate>', 'local learning rate', num('--lr'), 2e-3)
    .option('--seeds <n>', 'eval seeds', int('--seeds', 1), 2)
    .option('--probe-n <n>', 'linear probe: training examples', int('--probe-n', 1), 500)
    .option('--probe-epochs <n>', 'linear probe: epochs', int('--probe-epochs', 1), 10)
    .option('--few-n <n>', 'few-example fine-tuning: training examples', int('--few-n', 1), 500)
    .option('--few-epochs <n>', 'few-example fine-tuning: epochs', int('--few-epochs', 1), 10)
    .option('--full-n <n>', 'full-data fine-tuning: examples (0: the whole train set)', int('--full-n', 0), 0)
    .option('--full-epochs <n>', 'full-data fine-tuning: epochs', int('--full-epochs', 1), 3)
    .option('--full-seeds <n>', 'seeds for the full-data protocol (default: --seeds)', int('--full-seeds', 1))
    .option('--no-loo', 'skip the leave-one-task-out swarms (unseen tasks)')
    .option('--rule <spec>', 'also compare this fusion rule in-process, e.g. ties:density=0.2 (repeatable)', collect, [])
    .option('--jobs <n>', 'eval processes at a time', int('--jobs', 1), 2)
    .option('--resume <dir>', 'continue the killed run in DIR (give it the same options): finished stages and evaluations are kept')
    .option('--base-seed <seed>', 'seed of the initial built-in base, shared by every arm', 'coldfusion-experiment-v1')
    .option('--max-len <n>', 'tokens per example', int('--max-len', 4), 32)
    .addOption(new Option('--codec <codec>', 'delta compression of the swarms\' deltas (default q8-block; one run per codec to compare codecs)').choices([...CODEC_IDS]))
    .option('--density-ppm <n>', `top-k codecs: values kept per million (default ${DEFAULT_DENSITY_PPM})`, int('--density-ppm', 1))
    .action(async (o, cmd: Command) => {
      if (o.resume && cmd.getOptionValueSource('out') === 'cli') throw new UserError('give either --out (a new run) or --resume (continue a run), not both')
      const densityPpm = densityFor(o.codec, o.densityPpm)
      const s = await runExperiment({
        data: resolve(o.data), out: o.resume ?? o.out, resume: Boolean(o.resume), tasks: String(o.tasks).split(','), rounds: o.rounds, nodeTrainN: o.nodeTrainN || undefined, steps: o.steps,
        batchSize: o.batchSize, lr: o.lr, seeds: o.seeds, probeN: o.probeN, probeEpochs: o.probeEpochs, fewN: o.fewN, fewEpochs: o.fewEpochs,
        fullN: o.fullN || undefined, fullEpochs: o.fullEpochs, fullSeeds: o.fullSeeds ?? o.seeds, loo: o.loo !== false, rules: o.rule, jobs: o.jobs,
        baseSeed: o.baseSeed, maxLen: o.maxLen,
        ...(o.codec ? { codec: { codec: o.codec, densityPpm } } : {}),
        log: (l) => process.stderr.write(l + '\n'),
      })
      process.stdout.write(`report  ${s.files.report}\nplot    ${s.files.plot}\nsummary ${s.files.json}\nbases:\n`)
      for (const [k, v] of Object.entries(s.bases)) process.stdout.write(`  ${k.padEnd(22)} ${v.dir}\n`)
    })
}
