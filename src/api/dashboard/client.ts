/**
 * The dashboard in the browser: polls the node's JSON API every two seconds and redraws the page
 * (header, hash agreement, charts, timeline, peers, warnings). Runs as a plain ES module with no
 * dependencies; every value from the API is inserted as text, never as markup.
 */
export {}

interface Status {
  peerId: string
  swarm: string
  swarmName?: string
  round: number
  working?: number
  baseHash: string
  phase: string
  progress?: { step: number; total: number }
  peers: string[]
  members: string[]
  backend: string
}
interface PhaseSpan { phase: string; start: number; end?: number }
interface RoundView {
  round: number
  hash?: string
  kind?: string
  contributors?: number
  committedAt?: string
  eval?: { before?: number; local?: number; after?: number }
  trainLoss?: number
  phases: PhaseSpan[]
  seconds?: number
  peers: Record<string, { hash?: string; base?: string; loss?: number }>
}
interface History { self: string; rounds: RoundView[] }
interface PeerInfo { peerId: string; connected: boolean; member: boolean; round?: number; hash?: string; agreement?: string }
interface Warning { at: string; level: string; msg: string; detail: string }

const REFRESH_MS = 2000
const SVG = 'http://www.w3.org/2000/svg'
const PHASES = ['syncing', 'training', 'collecting', 'stalled', 'voting', 'fusing', 'committing']
const PALETTE = ['#4e79a7', '#e15759', '#59a14f', '#f28e2b', '#b07aa1', '#76b7b2', '#edc948', '#9c755f', '#ff9da7', '#bab0ac']

class Unauthorized extends Error {}

let token = readToken()
let lastOk = 0

function readToken(): string | undefined {
  // A token given as #token=... is kept for this tab only and removed from the address bar.
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash)
  if (m) {
    sessionStorage.setItem('coldfusiond-token', decodeURIComponent(m[1]))
    history.replaceState(null, '', location.pathname + location.search)
  }
  return sessionStorage.getItem('coldfusiond-token') ?? undefined
}

async function get<T>(path: string): Promise<T> {
  const res = await fetch(path, { cache: 'no-store', headers: token ? { authorization: `Bearer ${token}` } : {} })
  if (res.status === 401) throw new Unauthorized('this node needs an API token')
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`)
  return (await res.json()) as T
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, ...children: (Node | string)[]): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v)
  for (const c of children) e.append(c)
  return e
}

function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number> = {}): SVGElementTagNameMap[K] {
  const e = document.createElementNS(SVG, tag)
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v))
  return e
}

function byId(id: string): HTMLElement {
  const e = document.getElementById(id)
  if (!e) throw new Error(`page lacks #${id}`)
  return e
}

function replace(id: string, ...children: (Node | string)[]): void {
  byId(id).replaceChildren(...children)
}

const short = (hash: string | undefined): string => (hash ? hash.slice(0, 12) : '—')
const fmt = (x: number | undefined, digits = 3): string => (x === undefined || x === null || !Number.isFinite(x) ? '—' : x.toFixed(digits))

/** A stable colour per base hash, so equal hashes look equal across the page. */
function hashColor(hash: string): string {
  const h = parseInt(hash.slice(0, 8), 16)
  // Golden-angle steps spread nearby values around the colour wheel.
  return `hsl(${Math.round((h * 137.508) % 360)}, 58%, ${36 + (h % 5) * 3}%)`
}

function hashChip(hash: string | undefined): HTMLElement {
  if (!hash) return el('span', { class: 'empty' }, '—')
  const chip = el('span', { class: 'hash', title: hash, 'data-hash': hash }, short(hash))
  chip.style.background = hashColor(hash)
  return chip
}

/** Nodes as the page names them: this node first, then peers in a stable order. */
function nodeOrder(self: string, rounds: RoundView[], peers: PeerInfo[]): string[] {
  const ids = new Set<string>()
  for (const p of peers) ids.add(p.peerId)
  for (const r of rounds) for (const p of Object.keys(r.peers)) ids.add(p)
  ids.delete(self)
  return [self, ...[...ids].sort()]
}

function nodeLabel(id: string, self: string): string {
  return id === self ? 'this node' : `…${id.slice(-6)}`
}

function renderHeader(s: Status): void {
  replace('h-swarm', `${s.swarmName ?? ''} ${s.swarm.slice(0, 8)}`.trim())
  byId('h-node').title = s.peerId
  replace('h-node', `…${s.peerId.slice(-8)}`)
  replace('h-phase', s.phase + (s.phase === 'training' && s.progress ? ` ${s.progress.step}/${s.progress.total}` : ''))
  replace('h-round', `${s.round}${s.working && s.working > s.round && s.phase !== 'done' ? ` (working on ${s.working})` : ''}`)
  replace('h-base', hashChip(s.baseHash))
  replace('h-peers', `${s.peers.length} connected`)
  replace('h-backend', s.backend)
}

/** Per round, which node committed which base: one row per round, one column per node. */
function renderAgreement(h: History, nodes: string[], s: Status, peers: PeerInfo[]): void {
  const rounds = h.rounds.filter((r) => r.hash || Object.values(r.peers).some((p) => p.hash)).slice(-12).reverse()
  if (rounds.length === 0) return
  const onOurs = peers.filter((p) => p.agreement === 'same').length + 1
  const known = peers.filter((p) => p.hash).length + 1
  const summary = byId('agreement-summary')
  summary.className = onOurs === known ? 'agree' : 'split'
  summary.replaceChildren(`round ${s.round}: ${onOurs} of ${known} node${known === 1 ? '' : 's'} on base `, hashChip(s.baseHash), onOurs === known ? '' : ' — the others committed something else (see the rows below)')
  const head = el('tr', {}, el('th', {}, 'round'), ...nodes.map((n) => el('th', { class: 'node', title: n }, nodeLabel(n, h.self))), el('th', {}, 'verdict'))
  const rows = rounds.map((r) => {
    const hashes = nodes.map((n) => (n === h.self ? r.hash : r.peers[n]?.hash))
    const counts = new Map<string, number>()
    for (const x of hashes) if (x) counts.set(x, (counts.get(x) ?? 0) + 1)
    const heard = hashes.filter(Boolean).length
    let verdict: HTMLElement
    if (counts.size === 1) verdict = el('span', { class: heard === nodes.length ? 'agree' : 'partial' }, `${heard}/${nodes.length} agree`)
    else verdict = el('span', { class: 'split' }, `split: ${[...counts.values()].sort((a, b) => b - a).join(' / ')}`)
    return el('tr', { 'data-round': String(r.round) },
      el('td', {}, String(r.round)),
      ...hashes.map((x, i) => el('td', { class: 'cell', 'data-node': nodes[i], 'data-hash': x ?? '' }, hashChip(x))),
      el('td', { class: 'verdict' }, verdict))
  })
  replace('agreement-grid', el('table', {}, el('thead', {}, head), el('tbody', {}, ...rows)))
}

interface Series { name: string; color: string; dash?: string; points: [number, number][] }

/** A small line chart in SVG: rounds on x, values on y, a point per value with its tooltip. */
function lineChart(series: Series[], opts: { yLabel: string; yMin?: number; yMax?: number; digits?: number }): Node {
  const W = 620, H = 250, L = 46, R = 14, T = 12, B = 34
  const all = series.flatMap((s) => s.points)
  const xs = all.map((p) => p[0])
  const ys = all.map((p) => p[1])
  const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1)
  let y0 = opts.yMin ?? Math.min(...ys), y1 = opts.yMax ?? Math.max(...ys)
  if (y1 - y0 < 1e-9) { y0 -= 0.5; y1 += 0.5 }
  const pad = (y1 - y0) * 0.08
  if (opts.yMin === undefined) y0 -= pad
  if (opts.yMax === undefined) y1 += pad
  const X = (x: number): number => L + ((x - x0) / (x1 - x0)) * (W - L - R)
  const Y = (y: number): number => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B)
  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': opts.yLabel })
  for (let i = 0; i <= 4; i++) {
    const v = y0 + ((y1 - y0) * i) / 4
    root.append(svg('line', { class: 'grid', x1: L, x2: W - R, y1: Y(v), y2: Y(v) }))
    const t = svg('text', { x: L - 6, y: Y(v) + 4, 'text-anchor': 'end' })
    t.textContent = v.toFixed(opts.digits ?? 2)
    root.append(t)
  }
  const step = Math.max(1, Math.ceil((x1 - x0) / 12))
  for (let x = Math.ceil(x0); x <= x1; x += step) {
    const t = svg('text', { x: X(x), y: H - B + 16, 'text-anchor': 'middle' })
    t.textContent = String(x)
    root.append(t)
  }
  const xl = svg('text', { x: (L + W - R) / 2, y: H - 4, 'text-anchor': 'middle' })
  xl.textContent = 'round'
  root.append(xl, svg('line', { class: 'axis', x1: L, x2: W - R, y1: H - B, y2: H - B }), svg('line', { class: 'axis', x1: L, x2: L, y1: T, y2: H - B }))
  // The first series is the main one: drawn last, so it stays visible where lines overlap.
  for (const s of series.slice().reverse()) {
    if (s.points.length === 0) continue
    const d = s.points.map((p, i) => `${i ? 'L' : 'M'}${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join(' ')
    root.append(svg('path', { class: 'series', d, fill: 'none', stroke: s.color, 'stroke-width': 2, ...(s.dash ? { 'stroke-dasharray': s.dash } : {}), 'data-series': s.name }))
    for (const [x, y] of s.points) {
      const c = svg('circle', { class: 'series-point', cx: X(x), cy: Y(y), r: 3.5, fill: s.color, 'data-series': s.name, 'data-round': x })
      const title = svg('title')
      title.textContent = `${s.name}, round ${x}: ${y.toFixed(opts.digits ?? 3)}`
      c.append(title)
      root.append(c)
    }
  }
  const legend = el('div', { class: 'legend' }, ...series.filter((s) => s.points.length > 0).map((s) => {
    const swatch = el('i')
    swatch.style.background = s.color
    return el('span', {}, swatch, s.name)
  }))
  return el('div', {}, root, legend)
}

function renderCharts(h: History, nodes: string[]): void {
  const pts = (f: (r: RoundView) => number | undefined): [number, number][] =>
    h.rounds.map((r) => [r.round, f(r)] as [number, number | undefined]).filter((p): p is [number, number] => p[1] !== undefined && p[1] !== null && Number.isFinite(p[1]))
  const evalSeries: Series[] = [
    { name: 'after fusion (new base + own head)', color: '#2f6db5', points: pts((r) => r.eval?.after) },
    { name: 'after local training', color: '#59a14f', dash: '2 3', points: pts((r) => r.eval?.local) },
    { name: 'before (round base + own head)', color: '#9aa1ad', dash: '6 4', points: pts((r) => r.eval?.before) },
  ]
  if (evalSeries.some((s) => s.points.length > 0)) replace('eval-chart', lineChart(evalSeries, { yLabel: 'accuracy', yMin: 0, yMax: 1 }))
  const lossSeries: Series[] = nodes.map((n, i) => ({
    name: nodeLabel(n, h.self),
    color: PALETTE[i % PALETTE.length],
    points: pts((r) => (n === h.self ? r.trainLoss : r.peers[n]?.loss)),
  }))
  if (lossSeries.some((s) => s.points.length > 0)) replace('loss-chart', lineChart(lossSeries, { yLabel: 'training loss', digits: 2 }))
}

function renderTimeline(h: History, now: number): void {
  const rounds = h.rounds.slice(-12)
  if (rounds.length === 0) return
  const span = (r: RoundView): number => {
    const first = r.phases[0]
    if (!first) return 0
    const last = r.phases[r.phases.length - 1]
    return ((last.end ?? now) - first.start) / 1000
  }
  const longest = Math.max(1, ...rounds.map(span))
  const rows = rounds.slice().reverse().map((r) => {
    const total = span(r)
    const label = el('div', { class: 'label' }, el('strong', {}, `round ${r.round}`), ` · ${r.phases.length ? `${total.toFixed(1)} s` : 'before this start'}${r.hash ? '' : ' · running'}`)
    const bar = el('div', { class: 'bar' })
    if (r.phases.length === 0) {
      const seg = el('div', { class: 'segment phase-other', title: `committed ${r.committedAt ?? ''} (no phase times: the node restarted since)` }, r.committedAt ? `committed ${r.committedAt.slice(11, 19)}` : '')
      seg.style.width = '100%'
      bar.append(seg)
    }
    for (const p of r.phases) {
      const secs = ((p.end ?? now) - p.start) / 1000
      const cls = PHASES.includes(p.phase) ? `phase-${p.phase}` : 'phase-other'
      const seg = el('div', { class: `segment ${cls}`, title: `${p.phase}: ${secs.toFixed(2)} s`, 'data-phase': p.phase }, secs / longest > 0.08 ? `${p.phase} ${secs.toFixed(1)}s` : '')
      seg.style.width = `${Math.max(0.3, (100 * secs) / longest)}%`
      bar.append(seg)
    }
    return el('div', { class: 'timeline-row', 'data-round': String(r.round) }, label, bar)
  })
  replace('timeline-rows', ...rows)
  replace('timeline-legend', ...PHASES.map((p) => {
    const swatch = el('i', { class: `phase-${p}` })
    return el('span', {}, swatch, p)
  }))
}

function renderPeers(peers: PeerInfo[], s: Status): void {
  if (peers.length === 0) return
  const rows = peers.map((p) =>
    el('tr', { 'data-peer': p.peerId },
      el('td', { class: 'mono', title: p.peerId }, nodeLabel(p.peerId, s.peerId)),
      el('td', {}, p.connected ? 'connected' : p.member ? 'heard via gossip' : 'not connected'),
      el('td', {}, p.round === undefined ? '—' : String(p.round)),
      el('td', {}, hashChip(p.hash)),
      el('td', {}, el('span', { class: `badge ${p.agreement ?? 'unknown'}` }, agreementText(p.agreement, s)))))
  replace('peers-table', el('table', {},
    el('thead', {}, el('tr', {}, el('th', {}, 'peer'), el('th', {}, 'link'), el('th', {}, 'last commit'), el('th', {}, 'base'), el('th', {}, 'vs this node'))),
    el('tbody', {}, ...rows)))
}

function agreementText(a: string | undefined, s: Status): string {
  switch (a) {
    case 'same': return 'same base'
    case 'behind': return `behind (we are at ${s.round})`
    case 'ahead': return 'ahead'
    case 'diverged': return 'DIVERGED'
    default: return 'no commit heard'
  }
}

function renderWarnings(ws: Warning[]): void {
  if (ws.length === 0) return
  const items = ws.slice(-50).reverse().map((w) =>
    el('li', {},
      el('span', { class: `lvl ${w.level}` }, w.level),
      el('span', { class: 'mono' }, `${w.at.slice(11, 19)} `),
      w.msg,
      w.detail ? el('div', { class: 'detail' }, w.detail) : ''))
  replace('warnings-list', el('ul', {}, ...items))
}

function showBanner(content: (Node | string)[] | undefined): void {
  const b = byId('banner')
  b.className = content ? 'show' : ''
  b.replaceChildren(...(content ?? []))
}

function askToken(): void {
  if (document.getElementById('token-form')) return
  const input = el('input', { type: 'password', placeholder: 'API token', autocomplete: 'off' })
  const form = el('form', { id: 'token-form' }, input, el('button', { type: 'submit' }, 'use token'))
  form.addEventListener('submit', (e) => {
    e.preventDefault()
    token = input.value.trim() || undefined
    if (token) sessionStorage.setItem('coldfusiond-token', token)
    showBanner(undefined)
    void loop()
  })
  showBanner(['This node\'s API is not on loopback and needs its bearer token (api.token in config.yaml, or the api-token file in the node home).', form])
}

function setLive(ok: boolean, detail?: string): void {
  const live = byId('live')
  live.className = ok ? 'ok' : 'down'
  if (ok) lastOk = Date.now()
  const age = lastOk ? `updated ${new Date(lastOk).toLocaleTimeString()}` : 'never updated'
  replace('updated', ok ? age : `${detail ?? 'unreachable'} · ${age}`)
}

/** One update of the page; false when polling should wait for a token. */
async function refresh(): Promise<boolean> {
  try {
    const [s, h, p, w] = await Promise.all([
      get<Status>('/status'), get<History>('/history?limit=30'), get<{ peers: PeerInfo[] }>('/peers'), get<Warning[]>('/warnings'),
    ])
    const nodes = nodeOrder(h.self, h.rounds, p.peers)
    renderHeader(s)
    renderAgreement(h, nodes, s, p.peers)
    renderCharts(h, nodes)
    renderTimeline(h, Date.now())
    renderPeers(p.peers, s)
    renderWarnings(w)
    if (!document.getElementById('token-form')) showBanner(undefined)
    setLive(true)
    document.body.dataset.round = String(s.round)
    return true
  } catch (err) {
    const unauthorized = err instanceof Unauthorized
    if (unauthorized) askToken()
    setLive(false, unauthorized ? 'token needed' : 'node unreachable')
    return !unauthorized
  }
}

let timer: ReturnType<typeof setTimeout> | undefined

async function loop(): Promise<void> {
  clearTimeout(timer)
  // Without a valid token there is nothing to poll for until one is entered.
  if (await refresh()) timer = setTimeout(() => void loop(), REFRESH_MS)
}

void loop()
