export interface EvalRecord {
  arm: string
  round: number
  task: string
  protocol: 'probe' | 'few' | 'full'
  seed: number
  accuracy: number
  examples: number
  seconds: number
  dir?: undefined
}

export interface Summary {
  options: Record<string, unknown> & { tasks: string[]; rounds: number; seeds: number }
  records: EvalRecord[]
  bases: Record<string, { dir: string; hash: string }>
  swarms: { all: { agreed: boolean; seconds: number; dir: string }; leaveOneOut: Record<string, { agreed: boolean; seconds: number }> }
  seconds: number
  files: { json: string; report: string; plot: string }
  aggregates?: Aggregate[]
}

export interface Aggregate {
  arm: string
  round: number
  protocol: string
  /** Per task: mean and sample standard deviation over seeds. */
  tasks: Record<string, { mean: number; sd: number; n: number }>
  /** The task average, computed per seed, then mean and sd over seeds. */
  average: { mean: number; sd: number; n: number }
}

const PROTOCOL_NAMES: Record<string, string> = { probe: 'linear probe (ColD-Frozen)', few: 'fine-tuning, few examples', full: 'fine-tuning, full data' }

function stats(xs: number[]): { mean: number; sd: number; n: number } {
  const n = xs.length
  const mean = xs.reduce((a, b) => a + b, 0) / n
  const sd = n > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1)) : 0
  return { mean, sd, n }
}

/** Mean and spread per (arm, round, protocol); the unseen arm averages the held-out tasks. */
export function aggregate(records: EvalRecord[]): Aggregate[] {
  const groups = new Map<string, EvalRecord[]>()
  for (const r of records) {
    const k = `${r.arm}\u0000${r.round}\u0000${r.protocol}`
    groups.set(k, [...(groups.get(k) ?? []), r])
  }
  const out: Aggregate[] = []
  for (const [k, rs] of groups) {
    const [arm, round, protocol] = k.split('\u0000')
    const tasks: Aggregate['tasks'] = {}
    for (const t of [...new Set(rs.map((r) => r.task))].sort()) tasks[t] = stats(rs.filter((r) => r.task === t).map((r) => r.accuracy))
    const seeds = [...new Set(rs.map((r) => r.seed))].sort()
    const perSeed = seeds.map((s) => { const xs = rs.filter((r) => r.seed === s).map((r) => r.accuracy); return xs.reduce((a, b) => a + b, 0) / xs.length })
    out.push({ arm, round: Number(round), protocol, tasks, average: stats(perSeed) })
  }
  return out.sort((a, b) => (a.protocol + a.arm + a.round < b.protocol + b.arm + b.round ? -1 : 1))
}

const pct = (s: { mean: number; sd: number; n: number } | undefined): string => (s ? `${(100 * s.mean).toFixed(1)}${s.n > 1 ? ` ± ${(100 * s.sd).toFixed(1)}` : ''}` : '')

export function renderReport(s: Summary): { markdown: string; svg: string } {
  const ag = aggregate(s.records)
  s.aggregates = ag
  const tasks = s.options.tasks
  const R = s.options.rounds
  const find = (arm: string, round: number, protocol: string) => ag.find((a) => a.arm === arm && a.round === round && a.protocol === protocol)
  const lines: string[] = []
  lines.push(`# ColD Fusion experiment`, '')
  const codec = s.options.codec as { codec: string; densityPpm?: number } | undefined
  const deltas = codec ? `, ${codec.codec}${codec.densityPpm !== undefined ? ` (${codec.densityPpm} per million kept)` : ''} deltas` : ''
  lines.push(`${tasks.length} tasks (${tasks.join(', ')}), ${R} rounds${deltas}, ${s.options.seeds} eval seeds; ${(s.seconds / 60).toFixed(1)} min in all. Accuracy in %, mean ± sample sd over seeds.`, '')
  const arms = ['initial', 'fused', 'unseen', 'multitask', ...[...new Set(s.records.map((r) => r.arm))].filter((a) => a.startsWith('rule:'))]
  for (const protocol of ['probe', 'few', 'full']) {
    if (!ag.some((a) => a.protocol === protocol)) continue
    lines.push(`## ${PROTOCOL_NAMES[protocol]}`, '')
    lines.push(`| base | ${tasks.join(' | ')} | average |`, `|---|${tasks.map(() => '---|').join('')}---|`)
    for (const arm of arms) {
      const a = find(arm, arm === 'initial' ? 0 : R, protocol)
      if (!a) continue
      const label = arm === 'fused' ? `fused, round ${R} (seen)` : arm === 'unseen' ? `fused without the task, round ${R} (unseen)` : arm === 'initial' ? 'initial (round 0)' : arm
      lines.push(`| ${label} | ${tasks.map((t) => pct(a.tasks[t])).join(' | ')} | ${pct(a.average)} |`)
    }
    const i0 = find('initial', 0, protocol)
    const f = find('fused', R, protocol)
    const u = find('unseen', R, protocol)
    if (i0 && f) {
      const gain = (x: Aggregate) => `${(100 * (x.average.mean - i0.average.mean)).toFixed(1)} points`
      let note = `Gain over the initial base: seen ${gain(f)}`
      if (u) {
        const initUnseen = tasks.reduce((acc, t) => acc + (i0.tasks[t]?.mean ?? 0), 0) / tasks.length
        note += `, unseen ${(100 * (u.average.mean - initUnseen)).toFixed(1)} points`
      }
      lines.push('', note + '.')
    }
    lines.push('')
  }
  lines.push(`## By round (fused base of the ${tasks.length}-task swarm, task average)`, '')
  lines.push('| round | probe | few | probe gap to multitask | few gap to multitask |', '|---|---|---|---|---|')
  for (let r = 0; r <= R; r++) {
    const arm = r === 0 ? 'initial' : 'fused'
    const p = find(arm, r, 'probe')
    const q = find(arm, r, 'few')
    const mp = find('multitask', R, 'probe')
    const mq = find('multitask', R, 'few')
    const gap = (x?: Aggregate, m?: Aggregate) => (x && m ? (100 * (m.average.mean - x.average.mean)).toFixed(1) : '')
    lines.push(`| ${r} | ${pct(p?.average)} | ${pct(q?.average)} | ${gap(p, mp)} | ${gap(q, mq)} |`)
  }
  lines.push('', `Per-task accuracy by round: ${s.files.json} (records).`, '')
  lines.push('## Bases', '', '| arm | hash | directory |', '|---|---|---|')
  for (const [k, v] of Object.entries(s.bases)) lines.push(`| ${k} | ${v.hash.slice(0, 12)} | ${v.dir} |`)
  lines.push('', `Swarm agreement: all-task swarm ${s.swarms.all.agreed ? 'agreed' : 'DISAGREED'}; leave-one-out ${Object.entries(s.swarms.leaveOneOut).map(([t, v]) => `${t}: ${v.agreed ? 'agreed' : 'DISAGREED'}`).join(', ') || 'not run'}.`, '')
  return { markdown: lines.join('\n'), svg: plot(ag, R, tasks) }
}

function plot(ag: Aggregate[], R: number, tasks: string[]): string {
  const W = 640, H = 360, L = 50, B = 40, T = 30, Rm = 170
  const series: { name: string; color: string; dash?: string; pts: [number, number][] }[] = []
  const colors: Record<string, string> = { probe: '#1f77b4', few: '#d62728', full: '#2ca02c' }
  for (const protocol of ['probe', 'few']) {
    const pts: [number, number][] = []
    for (let r = 0; r <= R; r++) {
      const a = ag.find((x) => x.arm === (r === 0 ? 'initial' : 'fused') && x.round === r && x.protocol === protocol)
      if (a) pts.push([r, a.average.mean])
    }
    series.push({ name: `fused, ${protocol}`, color: colors[protocol], pts })
    const m = ag.find((x) => x.arm === 'multitask' && x.protocol === protocol)
    if (m) series.push({ name: `multitask, ${protocol}`, color: colors[protocol], dash: '6 4', pts: [[0, m.average.mean], [R, m.average.mean]] })
    const u = ag.find((x) => x.arm === 'unseen' && x.protocol === protocol)
    if (u) series.push({ name: `unseen (LOO), ${protocol}`, color: colors[protocol], dash: '2 3', pts: [[R, u.average.mean]] })
  }
  const ys = series.flatMap((s) => s.pts.map((p) => p[1]))
  const lo = Math.floor(Math.min(...ys) * 20) / 20, hi = Math.ceil(Math.max(...ys) * 20) / 20 || 1
  const x = (r: number) => L + ((W - L - Rm) * r) / Math.max(1, R)
  const y = (v: number) => T + (H - T - B) * (1 - (v - lo) / Math.max(1e-9, hi - lo))
  const el: string[] = []
  el.push(`<text x="${L}" y="18" font-size="13">Task-average accuracy (${tasks.join(', ')}) by round</text>`)
  el.push(`<line x1="${L}" y1="${H - B}" x2="${W - Rm}" y2="${H - B}" stroke="#000"/><line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="#000"/>`)
  for (let r = 0; r <= R; r++) el.push(`<text x="${x(r)}" y="${H - B + 16}" font-size="11" text-anchor="middle">${r}</text>`)
  el.push(`<text x="${(L + W - Rm) / 2}" y="${H - 6}" font-size="11" text-anchor="middle">round</text>`)
  for (let v = lo; v <= hi + 1e-9; v += 0.05) el.push(`<text x="${L - 6}" y="${y(v) + 4}" font-size="11" text-anchor="end">${(100 * v).toFixed(0)}</text><line x1="${L}" y1="${y(v)}" x2="${W - Rm}" y2="${y(v)}" stroke="#eee"/>`)
  series.forEach((s, i) => {
    if (s.pts.length > 1) el.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''} points="${s.pts.map(([r, v]) => `${x(r)},${y(v)}`).join(' ')}"/>`)
    for (const [r, v] of s.pts) el.push(`<circle cx="${x(r)}" cy="${y(v)}" r="${s.dash === '2 3' ? 5 : 3}" fill="${s.dash === '2 3' ? 'none' : s.color}" stroke="${s.color}"/>`)
    el.push(`<line x1="${W - Rm + 10}" y1="${T + 10 + 18 * i}" x2="${W - Rm + 30}" y2="${T + 10 + 18 * i}" stroke="${s.color}" stroke-width="2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/><text x="${W - Rm + 35}" y="${T + 14 + 18 * i}" font-size="11">${s.name}</text>`)
  })
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif"><rect width="100%" height="100%" fill="#fff"/>${el.join('')}</svg>\n`
}
