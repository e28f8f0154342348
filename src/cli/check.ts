import { readdir, readFile } from 'node:fs/promises'
import { InvalidArgumentError, type Command } from 'commander'
import { join } from 'node:path'
import { ApiClient } from '../api/client.js'
import type { NodeStatus } from '../rounds/status.js'
import type { LedgerEntry } from '../store/ledger.js'
import { UserError } from '../util/errors.js'
import { finalEntries } from './mesh-report.js'
import { formatTable } from './table.js'

/**
 * `coldfusiond check`: the agreement check CI runs against a swarm (the compose `checker`
 * service). It waits until every node has committed R rounds, then compares what the nodes say
 * (/status, and /rounds for the lineage of every round) and succeeds only if they all agree.
 */

export interface CheckOptions {
  /** A roster directory: one subdirectory per node with `api` (its URL) and optionally `token`. */
  roster?: string
  /** Node API URLs (alternative to a roster), with an optional shared token file. */
  apis?: string[]
  tokenFile?: string
  /** How many nodes to expect (a roster is waited on until it lists this many). */
  nodes: number
  rounds: number
  timeoutSec: number
  json: boolean
  /** Progress lines (stderr by default). */
  say?: (line: string) => void
}

interface Target {
  name: string
  client: ApiClient
}

export interface CheckResult {
  agreed: boolean
  rounds: { round: number; hashes: Record<string, string>; agreed: boolean }[]
  nodes: Record<string, { round: number; baseHash: string; phase: string }>
  problems: string[]
}

export async function checkCommand(o: CheckOptions): Promise<number> {
  if (!o.roster && !o.apis?.length) throw new UserError('give --roster DIR or at least one --api URL')
  const say = o.say ?? ((l: string) => process.stderr.write(`check: ${l}\n`))
  const deadline = Date.now() + o.timeoutSec * 1000
  const targets = await resolveTargets(o, deadline, say)
  say(`checking ${targets.length} node(s): ${targets.map((t) => t.name).join(', ')}; waiting for round ${o.rounds}`)

  let statuses: (NodeStatus | undefined)[] = []
  let last = ''
  while (true) {
    statuses = await Promise.all(targets.map((t) => t.client.get<NodeStatus>('/status').catch(() => undefined)))
    const line = targets.map((t, i) => `${t.name} ${statuses[i] ? `round ${statuses[i]!.round} ${statuses[i]!.phase}` : 'unreachable'}`).join(', ')
    if (line !== last) say(line)
    last = line
    if (statuses.every((s) => s && s.round >= o.rounds)) break
    if (Date.now() > deadline) {
      const lagging = targets.filter((_, i) => !statuses[i] || statuses[i]!.round < o.rounds).map((t) => t.name)
      throw new UserError(`timed out after ${o.timeoutSec} s: ${lagging.join(', ')} did not commit round ${o.rounds} (${line})`)
    }
    await sleep(2000)
  }

  const ledgers = await Promise.all(targets.map((t) => t.client.get<LedgerEntry[]>('/rounds', 10_000)))
  const result = compare(targets.map((t) => t.name), statuses as NodeStatus[], ledgers, o.rounds)
  if (o.json) process.stdout.write(JSON.stringify(result) + '\n')
  else process.stdout.write(renderCheck(targets.map((t) => t.name), result, o.rounds) + '\n')
  return result.agreed ? 0 : 1
}

/** Agreement: every node has the same final base and delta set in rounds 1..R, and nodes at the same round report the same base. */
export function compare(names: string[], statuses: NodeStatus[], ledgers: LedgerEntry[][], rounds: number): CheckResult {
  const problems: string[] = []
  const finals = ledgers.map((l) => finalEntries(l))
  const out: CheckResult['rounds'] = []
  for (let r = 1; r <= rounds; r++) {
    const hashes: Record<string, string> = {}
    const sets = new Set<string>()
    names.forEach((n, i) => {
      const e = finals[i].get(r)
      hashes[n] = e?.hash ?? ''
      sets.add(e ? e.deltas.map((d) => d.id).join(',') : '')
    })
    const values = Object.values(hashes)
    const agreed = values.every((h) => h !== '' && h === values[0]) && sets.size === 1
    if (!agreed) problems.push(`round ${r}: ${values.some((h) => h === '') ? 'missing on some nodes; ' : ''}${new Set(values).size} different base(s), ${sets.size} different delta set(s)`)
    out.push({ round: r, hashes, agreed })
  }
  const byRound = new Map<number, Set<string>>()
  statuses.forEach((s) => byRound.set(s.round, (byRound.get(s.round) ?? new Set()).add(s.baseHash)))
  for (const [round, hs] of byRound) if (hs.size > 1) problems.push(`/status: nodes at round ${round} report ${hs.size} different bases`)
  const nodes = Object.fromEntries(names.map((n, i) => [n, { round: statuses[i].round, baseHash: statuses[i].baseHash, phase: statuses[i].phase }]))
  return { agreed: problems.length === 0, rounds: out, nodes, problems }
}

export function renderCheck(names: string[], r: CheckResult, rounds: number): string {
  const table = formatTable(['round', ...names, 'verdict'], r.rounds.map((x) => [String(x.round), ...names.map((n) => x.hashes[n]?.slice(0, 12) || 'missing'), x.agreed ? 'agreed' : 'DISAGREE']))
  const status = formatTable(['node', 'round', 'phase', 'base hash'], names.map((n) => [n, String(r.nodes[n].round), r.nodes[n].phase, r.nodes[n].baseHash]))
  const verdict = r.agreed
    ? `agreed: all ${names.length} nodes committed the same bases and delta sets in rounds 1-${rounds}`
    : `NOT AGREED:\n${r.problems.map((p) => `  ${p}`).join('\n')}`
  return `${table}\n\n${status}\n\n${verdict}`
}

async function resolveTargets(o: CheckOptions, deadline: number, say: (l: string) => void): Promise<Target[]> {
  if (!o.roster) {
    const token = o.tokenFile ? (await readFile(o.tokenFile, 'utf8')).trim() : undefined
    return o.apis!.map((url) => ({ name: url.replace(/^https?:\/\//, ''), client: new ApiClient(url.replace(/\/+$/, ''), token) }))
  }
  let seen = -1
  while (true) {
    const entries = await readRoster(o.roster)
    if (entries.length >= o.nodes) return entries
    if (entries.length !== seen) say(`roster ${o.roster}: ${entries.length} of ${o.nodes} node(s) registered`)
    seen = entries.length
    if (Date.now() > deadline) throw new UserError(`timed out: only ${entries.length} of ${o.nodes} nodes registered in ${o.roster}`)
    await sleep(1000)
  }
}

/** Roster entries written by docker/node.sh: <dir>/<peer id>/{api,token,addr}. */
async function readRoster(dir: string): Promise<Target[]> {
  const names = await readdir(dir).catch(() => [] as string[])
  const out: Target[] = []
  for (const peer of names.sort()) {
    const api = (await readFile(join(dir, peer, 'api'), 'utf8').catch(() => '')).trim()
    if (!api) continue
    const token = (await readFile(join(dir, peer, 'token'), 'utf8').catch(() => '')).trim() || undefined
    out.push({ name: `…${peer.slice(-8)}`, client: new ApiClient(api, token) })
  }
  return out
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}

/** `coldfusiond check`: registered here to keep main.ts a list of commands. */
export function registerCheck(program: Command): void {
  const positive = (name: string) => (v: string): number => {
    const n = Number(v)
    if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${name} must be a positive integer`)
    return n
  }
  program
    .command('check')
    .description('Wait until every node of a swarm has committed R rounds, compare their /status and /rounds, and exit 0 only if they all agree (what CI runs, e.g. the compose `checker` service)')
    .option('--roster <dir>', 'directory with one subdirectory per node holding `api` (its URL) and `token` (see docker/node.sh)')
    .option('--api <url>', 'a node API URL, repeatable (instead of --roster)', (v: string, prev: string[] | undefined) => [...(prev ?? []), v])
    .option('--token-file <file>', 'bearer token for the --api URLs')
    .option('--nodes <n>', 'nodes to wait for in the roster (default: the number of --api URLs, or 1)', positive('--nodes'))
    .option('--rounds <n>', 'rounds every node must have committed', positive('--rounds'), 3)
    .option('--timeout <sec>', 'give up (exit 2) after this many seconds', positive('--timeout'), 1800)
    .option('--json', 'print one JSON object instead of the tables')
    .action(async (o) => {
      process.exitCode = await checkCommand({
        roster: o.roster, apis: o.api, tokenFile: o.tokenFile, nodes: o.nodes ?? o.api?.length ?? 1, rounds: o.rounds, timeoutSec: o.timeout, json: Boolean(o.json),
      })
    })
}
