/**
 * The dashboard page: markup and styles only; client.ts fills it from the JSON API and refreshes
 * it every two seconds.
 */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>coldfusiond</title>
<link rel="icon" href="data:,">
<style>
  :root {
    --bg: #f4f5f7; --card: #fff; --ink: #1d2330; --muted: #687083; --line: #e2e5ea; --ok: #2f8f4e; --bad: #c23b3b; --warn: #b7791f;
    --training: #4e79a7; --collecting: #f28e2b; --stalled: #e15759; --voting: #76b7b2; --fusing: #59a14f; --committing: #c9a227; --syncing: #b07aa1; --other: #9aa1ad;
  }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background: var(--bg); color: var(--ink); }
  header { display: flex; flex-wrap: wrap; align-items: center; gap: 10px 18px; padding: 14px 22px; background: #1d2330; color: #fff; }
  header h1 { font-size: 18px; margin: 0 8px 0 0; font-weight: 650; letter-spacing: .2px; }
  header .kv { display: flex; flex-direction: column; }
  header .kv > span:first-child { font-size: 11px; text-transform: uppercase; letter-spacing: .6px; color: #aab2c3; }
  header .kv > span:last-child { font-weight: 600; }
  #live { margin-left: auto; font-size: 12px; color: #aab2c3; display: flex; align-items: center; gap: 6px; }
  #live .dot { width: 9px; height: 9px; border-radius: 50%; background: var(--other); }
  #live.ok .dot { background: #46c46e; }
  #live.down .dot { background: var(--bad); }
  #banner { display: none; margin: 14px 22px 0; padding: 10px 14px; border-radius: 8px; background: #fff4e5; border: 1px solid #f0c27b; }
  #banner.show { display: block; }
  #banner form { display: inline-flex; gap: 6px; margin-left: 8px; }
  main { display: grid; grid-template-columns: repeat(12, 1fr); gap: 16px; padding: 16px 22px 28px; }
  section { grid-column: span 12; background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 14px 16px; min-width: 0; }
  section.half { grid-column: span 6; }
  @media (max-width: 1000px) { section.half { grid-column: span 12; } }
  section h2 { margin: 0 0 10px; font-size: 13px; text-transform: uppercase; letter-spacing: .7px; color: var(--muted); font-weight: 650; }
  .empty { color: var(--muted); font-style: italic; }
  .hash { display: inline-block; font: 12px/1.2 ui-monospace, SFMono-Regular, Menlo, monospace; padding: 3px 7px; border-radius: 5px; color: #fff; white-space: nowrap; }
  .mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line); vertical-align: middle; }
  th { font-size: 11px; text-transform: uppercase; letter-spacing: .5px; color: var(--muted); font-weight: 600; }
  th.node { text-transform: none; font-family: ui-monospace, SFMono-Regular, Menlo, monospace; letter-spacing: 0; }
  #agreement td.verdict { font-weight: 600; }
  .agree { color: var(--ok); } .split { color: var(--bad); } .partial { color: var(--warn); }
  .chart svg { width: 100%; height: auto; display: block; }
  .chart .axis { stroke: #b9bfca; stroke-width: 1; }
  .chart .grid { stroke: #eef0f3; stroke-width: 1; }
  .chart text { font-size: 11px; fill: var(--muted); }
  .legend { display: flex; flex-wrap: wrap; gap: 4px 14px; margin-top: 6px; font-size: 12px; color: var(--muted); }
  .legend i { display: inline-block; width: 16px; height: 3px; margin-right: 5px; vertical-align: middle; border-radius: 2px; }
  .timeline-row { display: grid; grid-template-columns: 170px 1fr; gap: 10px; align-items: center; margin: 5px 0; }
  .timeline-row .label { font-size: 12px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
  .bar { display: flex; height: 20px; border-radius: 4px; overflow: hidden; background: #eef0f3; }
  .segment { height: 100%; min-width: 2px; color: #fff; font-size: 10px; line-height: 20px; padding-left: 4px; overflow: hidden; white-space: nowrap; }
  .phase-training { background: var(--training); } .phase-collecting { background: var(--collecting); } .phase-stalled { background: var(--stalled); }
  .phase-voting { background: var(--voting); } .phase-fusing { background: var(--fusing); } .phase-committing { background: var(--committing); }
  .phase-syncing { background: var(--syncing); } .phase-other { background: var(--other); }
  .badge { display: inline-block; padding: 1px 7px; border-radius: 10px; font-size: 11px; font-weight: 600; }
  .badge.same { background: #e3f4e8; color: var(--ok); } .badge.diverged { background: #fbe5e5; color: var(--bad); }
  .badge.behind, .badge.ahead { background: #fff1dc; color: var(--warn); } .badge.unknown { background: #eef0f3; color: var(--muted); }
  #warnings li { list-style: none; padding: 6px 0; border-bottom: 1px solid var(--line); }
  #warnings ul { margin: 0; padding: 0; max-height: 320px; overflow: auto; }
  #warnings .lvl { font-weight: 700; margin-right: 6px; text-transform: uppercase; font-size: 11px; }
  #warnings .lvl.warn { color: var(--warn); } #warnings .lvl.error, #warnings .lvl.fatal { color: var(--bad); }
  #warnings .detail { color: var(--muted); font-family: ui-monospace, Menlo, monospace; font-size: 11px; word-break: break-all; }
</style>
</head>
<body>
<header>
  <h1>coldfusiond</h1>
  <div class="kv"><span>swarm</span><span id="h-swarm">…</span></div>
  <div class="kv"><span>node</span><span id="h-node" class="mono">…</span></div>
  <div class="kv"><span>phase</span><span id="h-phase">…</span></div>
  <div class="kv"><span>round</span><span id="h-round">…</span></div>
  <div class="kv"><span>base</span><span id="h-base">…</span></div>
  <div class="kv"><span>peers</span><span id="h-peers">…</span></div>
  <div class="kv"><span>backend</span><span id="h-backend">…</span></div>
  <div id="live"><span class="dot"></span><span id="updated">connecting…</span></div>
</header>
<div id="banner"></div>
<main>
  <section id="agreement">
    <h2>Agreement on the base hash</h2>
    <p id="agreement-summary" class="empty">waiting for the first round…</p>
    <div id="agreement-grid"></div>
  </section>
  <section class="half">
    <h2>Eval metric per round (this node's held-out data)</h2>
    <div id="eval-chart" class="chart"><p class="empty">no committed round yet</p></div>
  </section>
  <section class="half">
    <h2>Training loss per round (every node, as announced)</h2>
    <div id="loss-chart" class="chart"><p class="empty">no announcement heard yet</p></div>
  </section>
  <section id="timeline">
    <h2>Rounds: phases and durations (this node)</h2>
    <div id="timeline-rows"><p class="empty">no round yet</p></div>
    <div id="timeline-legend" class="legend"></div>
  </section>
  <section id="peers" class="half">
    <h2>Peers</h2>
    <div id="peers-table"><p class="empty">no peer yet</p></div>
  </section>
  <section id="warnings" class="half">
    <h2>Recent warnings</h2>
    <div id="warnings-list"><p class="empty">none</p></div>
  </section>
</main>
<script type="module" src="/dashboard.js"></script>
</body>
</html>
`
