import assert from 'node:assert/strict'
import { access, mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium, type BrowserContext } from 'playwright-core'
import { Ledger } from '../src/store/ledger.js'
import { startSwarm, type RunningSwarm } from './helpers/running-swarm.js'
import { spawnCli } from './helpers/cli.js'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
const ARTIFACTS = join(ROOT, 'test-artifacts')
const CHROMIUM = '/usr/bin/chromium'

/** Debian's chromium, headless, isolated from the network services a desktop browser would call. */
async function launch(): Promise<{ context: BrowserContext; profile: string }> {
  await access(CHROMIUM).catch(() => {
    throw new Error(`${CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium; .ci/run does it)`)
  })
  const profile = await mkdtemp(join(tmpdir(), 'cfd-chromium-'))
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  })
  return { context, profile }
}

describe('dashboard', function () {
  this.timeout(300_000)
  let swarm: RunningSwarm | undefined
  let browser: { context: BrowserContext; profile: string } | undefined

  after(async () => {
    await browser?.context.close().catch(() => {})
    if (browser) await rm(browser.profile, { recursive: true, force: true })
    await swarm?.stop()
  })

  it('in headless Chromium against a running 3-node swarm: renders the eval chart, the hash agreement, the timeline and the peers, and updates live without reloading', async () => {
    const ROUNDS = 3
    swarm = await startSwarm(3, { seed: 'dashboard-test', stepsPerRound: 6, batchSize: 8, minContributors: 2, collectTimeoutSec: 60, voteTimeoutSec: 10 }, ROUNDS, 200)
    const [url] = await swarm.api()
    browser = await launch()
    const page = await browser.context.newPage()
    const problems: string[] = []
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`))
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(`console: ${m.text()}`)
    })
    let loads = 0
    page.on('load', () => loads++)

    // Opened while the swarm is still starting: everything after this arrives by polling.
    await page.goto(`${url}/`)
    await page.waitForFunction(() => document.body.dataset.round !== undefined)
    const first = Number(await page.evaluate(() => document.body.dataset.round))
    assert.ok(first < ROUNDS, `the page should open before the last round (showed round ${first})`)

    await swarm.untilRound(ROUNDS)
    await page.waitForFunction((r) => document.body.dataset.round === String(r) && document.querySelectorAll(`#agreement-grid tr[data-round="${r}"] td.cell`).length > 0, ROUNDS, { timeout: 30_000 })
    // Peers' commits arrive by gossip; give the last ones a refresh or two.
    await page.waitForFunction((r) => [...document.querySelectorAll(`#agreement-grid tr[data-round="${r}"] td.cell`)].every((c) => (c as HTMLElement).dataset.hash), ROUNDS, { timeout: 30_000 })
    assert.equal(loads, 1, 'the page updated without reloading')

    // Hash agreement: one row per round, one cell per node, all on the base the ledger recorded.
    const ledger = await Ledger.open(join(swarm.nodes[0].home, 'ledger.jsonl'), '')
    for (let r = 1; r <= ROUNDS; r++) {
      const cells = await page.locator(`#agreement-grid tr[data-round="${r}"] td.cell`).evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.hash))
      assert.equal(cells.length, 3, `round ${r}: a cell per node`)
      const expected = ledger.all().find((e) => e.round === r)!.hash
      assert.deepEqual(cells, [expected, expected, expected], `round ${r}`)
      assert.equal(await page.locator(`#agreement-grid tr[data-round="${r}"] td.verdict`).innerText(), '3/3 agree')
    }
    assert.match(await page.locator('#agreement-summary').innerText(), new RegExp(`round ${ROUNDS}: 3 of 3 nodes on base ${ledger.headHash().slice(0, 12)}`))

    // The eval chart: a point per round for this node, and a loss line per node.
    const evalPoints = await page.locator('#eval-chart circle.series-point[data-series^="after fusion"]').evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-round'))))
    assert.deepEqual(evalPoints, [1, 2, 3])
    assert.equal(await page.locator('#eval-chart path.series').count(), 3)
    assert.equal(await page.locator('#loss-chart path.series').count(), 3)

    // The timeline shows this node's phases for the rounds it ran.
    for (let r = 1; r <= ROUNDS; r++) {
      const phases = await page.locator(`#timeline-rows .timeline-row[data-round="${r}"] .segment`).evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.phase))
      for (const p of ['training', 'collecting', 'voting', 'fusing', 'committing']) assert.ok(phases.includes(p), `round ${r}: ${p} in ${phases.join(',')}`)
    }
    const peers = await page.locator('#peers-table tbody tr').allInnerTexts()
    assert.equal(peers.length, 2)
    for (const row of peers) assert.match(row, /connected[\s\S]*same base/)

    await mkdir(ARTIFACTS, { recursive: true })
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard.png'), fullPage: true })
    assert.deepEqual(problems, [])
  })

  it('`coldfusiond mesh --dashboard` prints a node\'s dashboard address first, and the page is live while the mesh runs', async () => {
    const dir = join(await mkdtemp(join(tmpdir(), 'cfd-mesh-dash-')), 'mesh')
    const mesh = spawnCli(['mesh', '--nodes', '1', '--rounds', '2', '--steps', '3', '--examples', '60', '--dir', dir, '--dashboard'])
    const exited = new Promise<number | null>((r) => mesh.on('exit', (code) => r(code)))
    let address: string | undefined
    let served = false
    const deadline = Date.now() + 120_000
    while (!served && Date.now() < deadline && mesh.exitCode === null) {
      address ??= /^dashboard: (http:\/\/127\.0\.0\.1:\d+\/) \(node-0, live while the mesh runs\)$/m.exec(mesh.output())?.[1]
      if (address) {
        const res = await fetch(address, { signal: AbortSignal.timeout(2000) }).catch(() => undefined)
        served = res?.ok === true && (await res.text()).includes('<title>coldfusiond</title>')
      }
      if (!served) await new Promise((r) => setTimeout(r, 200))
    }
    assert.equal(await exited, 0, mesh.output().slice(-2000))
    assert.ok(address, `no dashboard line in:\n${mesh.output().slice(0, 500)}`)
    assert.ok(served, 'the dashboard answered while the mesh ran')
    const out = mesh.output()
    assert.ok(out.indexOf('dashboard: ') < out.search(/^round\s+contributors/m), 'the address comes before the report')
  })
})
