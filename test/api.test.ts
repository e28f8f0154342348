import assert from 'node:assert/strict'
import { request } from 'node:http'
import { chmod, mkdtemp, readFile, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import { ApiServer } from '../src/api/server.js'
import { NodeTelemetry } from '../src/api/telemetry.js'
import { SwarmHistory } from '../src/api/history.js'
import { WarningLog } from '../src/api/warnings.js'
import { apiTokenFor, bearerMatches, isLoopbackHost } from '../src/api/token.js'
import { initHome } from '../src/cli/init.js'
import { Daemon } from '../src/daemon/daemon.js'
import { loadNodeConfig } from '../src/config/node.js'
import { HomeLayout } from '../src/store/home.js'
import type { NodeStatus } from '../src/rounds/status.js'
import type { LedgerEntry } from '../src/store/ledger.js'
import { ConfigError } from '../src/util/errors.js'
import { silentLogger } from '../src/util/log.js'
import { runCli } from './helpers/cli.js'
import { startSwarm, type RunningSwarm } from './helpers/running-swarm.js'

const H = (c: string): string => c.repeat(64)
const PEER_A = '12D3KooWArJn57asgYjLd3WFp1wqGboku36W3xPG91JLbkp9dJ3K'
const PEER_B = '12D3KooWGnSyq3LV2pFUBH9zrEFr2hHefEdet4gQxsohArRrk9ip'

function fakeStatus(): NodeStatus {
  return {
    peerId: PEER_A, swarm: H('5'), swarmName: 'test', round: 2, baseHash: H('b'), phase: 'collecting', working: 3,
    peers: [PEER_B], members: [PEER_B], addrs: [], backend: 'wasm', divergence: [], rejected: { schema: 2 },
    transfer: { bytesIn: 0, bytesOut: 0, served: 0, fetched: 0 }, startedAt: new Date().toISOString(),
  }
}

function entry(round: number, parent: string, hash: string, local?: LedgerEntry['local']): LedgerEntry {
  return { round, parent, hash, deltas: [{ id: H('d'), peer: PEER_A, examples: 10 }], rule: 'mean', kind: 'commit', at: new Date().toISOString(), local, sum: '0' }
}

/** GET with full control of the headers (fetch would not let a test set Host). */
function get(url: string, headers: Record<string, string> = {}, method = 'GET'): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers }, (res) => {
      let body = ''
      res.on('data', (d) => (body += d))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
    })
    req.on('error', reject)
    req.end()
  })
}

describe('HTTP API', function () {
  this.timeout(240_000)

  describe('server', () => {
    let api: ApiServer
    let url: string
    const status = fakeStatus()
    const ledger = [entry(1, H('0'), H('a'), { evalBefore: 0.5, evalAfter: 0.6, evalLocal: 0.55, trainLoss: 0.7 }), entry(2, H('a'), H('b'), { evalBefore: 0.6, evalAfter: 0.7 })]

    before(async () => {
      const telemetry = new NodeTelemetry(() => status, { processMetrics: false })
      telemetry.metrics.phase(3, 'training')
      telemetry.history.heard({ type: 'commit', v: 1, swarm: H('5'), round: 2, base: H('a'), hash: H('b'), rule: 'mean', contributors: 0 }, PEER_B)
      telemetry.logger(silentLogger()).child({ round: 2 }).warn({ peer: PEER_B }, 'something odd')
      api = new ApiServer({ status: () => status, rounds: () => ledger, telemetry }, silentLogger())
      url = await api.listen('127.0.0.1', 0)
    })
    after(() => api.close())

    it('serves /status, /rounds, /peers, /history, /warnings and /healthz as JSON on loopback, without a token', async () => {
      assert.deepEqual(JSON.parse((await get(`${url}/status`)).body), status)
      assert.equal(JSON.parse((await get(`${url}/rounds`)).body).length, 2)
      assert.deepEqual(JSON.parse((await get(`${url}/rounds?last=1`)).body).map((e: LedgerEntry) => e.round), [2])
      const peers = JSON.parse((await get(`${url}/peers`)).body)
      assert.deepEqual(peers.connected, [PEER_B])
      assert.deepEqual(peers.peers, [{ peerId: PEER_B, connected: true, member: true, round: 2, hash: H('b'), agreement: 'same' }])
      const history = JSON.parse((await get(`${url}/history?limit=5`)).body)
      assert.equal(history.self, PEER_A)
      assert.deepEqual(history.rounds.map((r: { round: number }) => r.round), [1, 2, 3])
      assert.equal(history.rounds[1].peers[PEER_B].hash, H('b'))
      assert.equal(history.rounds[0].eval.after, 0.6)
      assert.equal(history.rounds[2].phases[0].phase, 'training')
      const warnings = JSON.parse((await get(`${url}/warnings`)).body)
      assert.equal(warnings.length, 1)
      assert.equal(warnings[0].msg, 'something odd')
      assert.match(warnings[0].detail, new RegExp(`round=2 peer=${PEER_B}`))
      assert.deepEqual(JSON.parse((await get(`${url}/healthz`)).body), { status: 'ok', phase: 'collecting', round: 2 })
    })

    it('serves Prometheus metrics at /metrics', async () => {
      const r = await get(`${url}/metrics`)
      assert.equal(r.status, 200)
      assert.match(String(r.headers['content-type']), /^text\/plain; version=0\.0\.4/)
      for (const line of [
        'coldfusiond_round 2', 'coldfusiond_connected_peers 1', 'coldfusiond_backend_info{backend="wasm"} 1',
        'coldfusiond_gossip_rejected_total{reason="schema"} 2', 'coldfusiond_phase{phase="collecting"} 1',
        'coldfusiond_rounds_committed_total{kind="commit"} 0', 'coldfusiond_divergence_events_total{action="switched"} 0',
      ]) assert.ok(r.body.includes(line), line)
      for (const family of ['round_duration_seconds', 'round_phase_duration_seconds', 'sent_bytes_total', 'received_bytes_total', 'fetch_duration_seconds', 'training_step_duration_seconds', 'training_samples_per_second', 'fork_choice_total', 'eval_accuracy']) {
        assert.match(r.body, new RegExp(`^# TYPE coldfusiond_${family} `, 'm'), family)
      }
    })

    it('serves a self-contained dashboard page and script', async () => {
      const page = await get(`${url}/`)
      assert.equal(page.status, 200)
      assert.match(String(page.headers['content-type']), /^text\/html/)
      assert.match(String(page.headers['content-security-policy']), /default-src 'none'; script-src 'self'/)
      assert.match(page.body, /<script type="module" src="\/dashboard\.js"><\/script>/)
      // Nothing loaded from elsewhere: no CDN, no fonts, no external images.
      assert.doesNotMatch(page.body, /(src|href)="(https?:)?\/\//)
      const js = await get(`${url}/dashboard.js`)
      assert.equal(js.status, 200)
      assert.match(String(js.headers['content-type']), /^text\/javascript/)
      assert.match(js.body, /\/history\?limit=/)
      assert.doesNotMatch(js.body, /sourceMappingURL|https?:\/\/(?!www\.w3\.org)/)
    })

    it('rejects foreign Host names on loopback, other methods, and unknown paths with the list of endpoints', async () => {
      const rebound = await get(`${url}/status`, { host: 'attacker.example:80' })
      assert.equal(rebound.status, 403)
      assert.match(rebound.body, /bound to loopback/)
      assert.equal((await get(`${url}/status`, { host: 'localhost' })).status, 200)
      assert.equal((await get(`${url}/status`, {}, 'POST')).status, 405)
      const nf = await get(`${url}/nope`)
      assert.equal(nf.status, 404)
      assert.match(JSON.parse(nf.body).error, /\/status, \/rounds, \/peers, \/history, \/warnings, \/metrics/)
    })

    it('bound beyond loopback, data needs the bearer token; the page and /healthz do not', async () => {
      const token = 'x'.repeat(40)
      await assert.rejects(new ApiServer({ status: () => status, rounds: () => [] }, silentLogger()).listen('0.0.0.0', 0), /without a bearer token/)
      const open = new ApiServer({ status: () => status, rounds: () => ledger }, silentLogger(), { token })
      const base = (await open.listen('0.0.0.0', 0)).replace('0.0.0.0', '127.0.0.1')
      try {
        const denied = await get(`${base}/status`)
        assert.equal(denied.status, 401)
        assert.equal(denied.headers['www-authenticate'], 'Bearer realm="coldfusiond"')
        assert.equal((await get(`${base}/rounds`, { authorization: 'Bearer wrong-token-wrong-token' })).status, 401)
        assert.equal((await get(`${base}/status`, { authorization: `Bearer ${token}` })).status, 200)
        assert.equal((await get(`${base}/healthz`)).status, 200)
        assert.equal((await get(`${base}/`)).status, 200)
        // Any Host is fine off loopback (the token is the protection).
        assert.equal((await get(`${base}/status`, { authorization: `Bearer ${token}`, host: 'node-3.lab:8080' })).status, 200)
      } finally {
        await open.close()
      }
    })
  })

  describe('tokens', () => {
    it('knows loopback addresses and compares tokens', () => {
      for (const h of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost', 'LOCALHOST']) assert.ok(isLoopbackHost(h), h)
      for (const h of ['0.0.0.0', '::', '10.0.0.5', 'node-1', '128.0.0.1']) assert.ok(!isLoopbackHost(h), h)
      assert.ok(bearerMatches('Bearer abc', 'abc'))
      assert.ok(!bearerMatches('Bearer abd', 'abc'))
      assert.ok(!bearerMatches('Basic abc', 'abc'))
      assert.ok(!bearerMatches(undefined, 'abc'))
    })

    it('the token comes from api.token or the home\'s api-token file, which must be private; none off loopback is an error', async () => {
      const home = await mkdtemp(join(tmpdir(), 'cfd-token-'))
      const L = new HomeLayout(home)
      assert.equal(await apiTokenFor(home, { host: '127.0.0.1' }), undefined)
      await assert.rejects(apiTokenFor(home, { host: '0.0.0.0' }), (err: Error) => {
        assert.ok(err instanceof ConfigError)
        assert.match(err.message, /bound to 0\.0\.0\.0, which is not loopback, and has no bearer token: set api\.token/)
        assert.ok(err.message.includes(L.apiToken))
        return true
      })
      await writeFile(L.apiToken, 'a'.repeat(32) + '\n', { mode: 0o644 })
      await chmod(L.apiToken, 0o644)
      await assert.rejects(apiTokenFor(home, { host: '0.0.0.0' }), /readable by other users; run `chmod 600/)
      await chmod(L.apiToken, 0o600)
      assert.equal(await apiTokenFor(home, { host: '0.0.0.0' }), 'a'.repeat(32))
      await writeFile(L.config, 'x', { mode: 0o600 })
      await chmod(L.config, 0o600)
      assert.equal(await apiTokenFor(home, { host: '10.1.2.3', token: 'b'.repeat(20) }), 'b'.repeat(20))
      await chmod(L.config, 0o644)
      await assert.rejects(apiTokenFor(home, { host: '10.1.2.3', token: 'b'.repeat(20) }), /holds api\.token but is readable by other users/)
    })

    it('init --api-host writes a private token; a daemon bound beyond loopback without one refuses to start', async () => {
      const dir = await mkdtemp(join(tmpdir(), 'cfd-token-'))
      const r = await initHome({ home: join(dir, 'a'), apiHost: '0.0.0.0', demoExamples: 40, listen: ['/ip4/127.0.0.1/tcp/0'], mdns: false })
      assert.equal(r.config.api.host, '0.0.0.0')
      assert.equal(r.apiTokenFile, new HomeLayout(join(dir, 'a')).apiToken)
      assert.equal(((await stat(r.apiTokenFile!)).mode & 0o777).toString(8), '600')
      assert.match((await readFile(r.apiTokenFile!, 'utf8')).trim(), /^[0-9a-f]{64}$/)

      const plain = await initHome({ home: join(dir, 'b'), demoExamples: 40, listen: ['/ip4/127.0.0.1/tcp/0'], mdns: false })
      assert.equal(plain.apiTokenFile, undefined)
      const config = await loadNodeConfig(new HomeLayout(plain.home).config)
      const daemon = new Daemon({ home: plain.home, config: { ...config, api: { host: '0.0.0.0', port: 0 } }, log: silentLogger() })
      await assert.rejects(daemon.run(), /not loopback, and has no bearer token/)
    })
  })

  describe('telemetry', () => {
    it('captures warnings of a logger and its children, whatever the log level, and keeps the newest', () => {
      const ring = new WarningLog(3)
      const lines: string[] = []
      const base = pino({ level: 'warn' }, { write: (s: string) => void lines.push(s) })
      const log = ring.capture(base)
      log.info('not a warning')
      log.child({ round: 4 }).warn({ have: 1, min: 2 }, 'round stalled')
      log.error(new Error('disk full'))
      assert.equal(lines.length, 2, 'the log itself is unchanged')
      assert.deepEqual(ring.list().map((w) => [w.level, w.msg, w.detail]), [['warn', 'round stalled', 'round=4 have=1 min=2'], ['error', 'disk full', 'err=disk full']])
      const silent = ring.capture(pino({ level: 'silent' }))
      silent.warn('a')
      silent.warn('b')
      assert.deepEqual(ring.list().map((w) => w.msg), ['disk full', 'a', 'b'])
    })

    it('the round history is bounded: far-away rounds from peers are ignored, old rounds evicted, peers per round capped', () => {
      const h = new SwarmHistory(5, 2)
      h.phase(10, 'training', 1000)
      h.phase(10, 'collecting', 3000)
      const commit = (round: number, hash: string) => ({ type: 'commit' as const, v: 1 as const, swarm: H('5'), round, base: H('0'), hash, rule: 'mean', contributors: 0 })
      h.heard(commit(10, H('a')), 'p1')
      h.heard(commit(10_000, H('f')), 'p1')
      h.heard(commit(10, H('a')), 'p2')
      h.heard(commit(10, H('a')), 'p3')
      h.heard({ type: 'announce', v: 1, swarm: H('5'), round: 11, base: H('a'), deltaId: H('d'), size: 5, examples: 3, addrs: [], loss: 0.25 }, 'p1')
      for (let r = 11; r <= 20; r++) h.phase(r, 'training', 5000 + r)
      const view = h.view([], 100)
      assert.deepEqual(view.map((r) => r.round), [16, 17, 18, 19, 20])
      assert.equal(h.latestCommits().size, 0, 'round 10 was evicted')
      const h2 = new SwarmHistory(5, 2)
      h2.phase(10, 'training', 1000)
      h2.phase(10, 'done', 2000)
      for (const p of ['p1', 'p2', 'p3']) h2.heard(commit(10, H('a')), p)
      const v2 = h2.view([], 10)
      assert.deepEqual(Object.keys(v2[0].peers), ['p1', 'p2'])
      assert.deepEqual(v2[0].phases, [{ phase: 'training', start: 1000, end: 2000 }])
    })
  })

  describe('a running 2-node swarm', () => {
    let swarm: RunningSwarm
    let urls: string[]

    before(async () => {
      swarm = await startSwarm(2, { seed: 'api-test', stepsPerRound: 4, batchSize: 8, minContributors: 2, collectTimeoutSec: 60, voteTimeoutSec: 10 }, 2)
      urls = await swarm.api()
      await swarm.untilRound(2)
    })
    after(() => swarm?.stop())

    it('reports committed rounds, phase durations, bytes by kind, fetches, training speed, peers and backend in /metrics', async () => {
      const text = (await get(`${urls[0]}/metrics`)).body
      const value = (series: string): number => {
        const line = text.split('\n').find((l) => l.startsWith(series + ' '))
        assert.ok(line, `missing ${series}`)
        return Number(line.split(' ')[1])
      }
      assert.equal(value('coldfusiond_rounds_committed_total{kind="commit"}'), 2)
      assert.equal(value('coldfusiond_round_duration_seconds_count'), 2)
      for (const phase of ['training', 'collecting', 'voting', 'fusing', 'committing']) assert.ok(value(`coldfusiond_round_phase_duration_seconds_count{phase="${phase}"}`) >= 2, phase)
      assert.ok(value('coldfusiond_sent_bytes_total{kind="delta"}') > 1000)
      assert.ok(value('coldfusiond_received_bytes_total{kind="delta"}') > 1000)
      for (const kind of ['announce', 'vote', 'commit']) assert.ok(value(`coldfusiond_received_bytes_total{kind="${kind}"}`) > 0, kind)
      assert.equal(value('coldfusiond_fetch_duration_seconds_count{kind="delta",result="ok"}'), 2)
      assert.ok(value('coldfusiond_training_step_duration_seconds_count') >= 6)
      assert.ok(value('coldfusiond_training_samples_per_second') > 0)
      assert.equal(value('coldfusiond_connected_peers'), 1)
      assert.equal(value('coldfusiond_round'), 2)
      assert.ok(value('coldfusiond_eval_accuracy{stage="after"}') >= 0)
      assert.match(text, /^coldfusiond_backend_info\{backend="(wasm|cpu|tensorflow)"\} 1$/m)
      assert.match(text, /^process_cpu_seconds_total /m)
    })

    it('shows which base each node committed per round, in /history and /peers', async () => {
      const [a, b] = swarm.nodes
      const history = JSON.parse((await get(`${urls[0]}/history`)).body)
      assert.equal(history.self, a.peerId)
      const rounds = history.rounds.filter((r: { round: number }) => r.round <= 2)
      assert.equal(rounds.length, 2)
      for (const r of rounds) {
        assert.match(r.hash, /^[0-9a-f]{64}$/)
        assert.equal(r.peers[b.peerId].hash, r.hash)
        assert.equal(typeof r.peers[b.peerId].loss, 'number')
        assert.deepEqual(r.phases.map((p: { phase: string }) => p.phase).filter((p: string) => p !== 'syncing'), ['training', 'collecting', 'voting', 'fusing', 'committing'])
        assert.ok(r.seconds > 0)
        assert.equal(typeof r.eval.after, 'number')
      }
      const peers = JSON.parse((await get(`${urls[0]}/peers`)).body)
      assert.deepEqual(peers.peers.map((p: { peerId: string; agreement: string }) => [p.peerId, p.agreement]), [[b.peerId, 'same']])
    })

    it('`coldfusiond status` prints a readable table of the node, its peers and its rounds', async () => {
      const [a, b] = swarm.nodes
      const r = await runCli(['status', '--home', a.home])
      assert.equal(r.code, 0, r.stderr)
      assert.match(r.stdout, new RegExp(`^peer id\\s+${a.peerId}$`, 'm'))
      assert.match(r.stdout, /^state\s+running, done$/m)
      assert.match(r.stdout, /^round\s+2 committed$/m)
      assert.match(r.stdout, /^api\s+http:\/\/127\.0\.0\.1:\d+ \(dashboard: http:\/\/127\.0\.0\.1:\d+\/\)$/m)
      assert.match(r.stdout, /^peer\s+link\s+last commit\s+base\s+vs this node$/m)
      assert.match(r.stdout, new RegExp(`^${b.peerId}\\s+connected\\s+2\\s+[0-9a-f]{12}\\s+same base$`, 'm'))
      assert.match(r.stdout, /^round\s+base hash\s+contributors\s+how\s+eval before > after\s+committed$/m)
      assert.match(r.stdout, /^2\s+[0-9a-f]{12}\s+2\s+fused\s+\d\.\d{3} > \d\.\d{3}\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/m)
      const json = JSON.parse((await runCli(['status', '--home', a.home, '--json'])).stdout)
      assert.equal(json.round, 2)
      assert.equal(json.phase, 'done')
    })
  })
})
