// Turns bench/run's JSON lines into bench/RESULTS.md's tables (stdout).
// Usage: node report.mjs results.jsonl "command" "date" "machine" "skipped peers"
import { readFileSync } from 'node:fs';

const [file, cmd, date, machine, skipped] = process.argv.slice(2);
const rows = readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
const f = (x, d = 0) => (typeof x === 'number' && x >= 0 ? x.toFixed(d) : 'n/a');
const by = (name) => rows.filter((r) => r.name === name);
const get = (name, server) => by(name).find((r) => r.server === server);
const out = [];
out.push('# parley benchmark results', '');
out.push(`- Command: \`${cmd}\``, `- Date: ${date}`, `- Machine: ${machine}`);
out.push('- Server pinned to core 0 (`taskset -c 0`), parley-bench to core 1 (one process, or two for 18 000 connections); loopback only.');
if (skipped) out.push(`- Skipped peers: ${skipped}`);
const loads = rows.map((r) => r.load).filter((x) => typeof x === 'number');
if (loads.length)
  out.push(`- Load average during the runs: ${Math.min(...loads)}–${Math.max(...loads)} (other jobs share the two cores; bench/run gives server and generator their own autogroup at nice -15 when run as root)`);
out.push('');

const titles = {
  fanout: 'Fan-out, saturated: 100 rooms x 10 members, each member offering 200 msgs/s (1.8 M deliveries/s offered)',
  fanout32k: 'Fan-out at a fixed 32 000 deliveries/s: 20 rooms x 5 members x 80 msgs/s (latency)',
  bigroom: 'Big room: 1 room x 1000 members, one sender at 1200 msgs/s (1.2 M deliveries/s offered)',
  idle: 'Idle: 18 000 joined connections (rooms of 10) on one server, two generator processes, no traffic',
  churn: 'Churn: connect + upgrade + join + close, 64 in flight, as fast as possible',
  slow: 'Slow readers: 10 rooms x 10 members, 1 member per room never reads, 9 send 4 KiB at 100/s; RSS read every 20 ms, "after" 3 s after the load',
  threads: 'Reactor threads (parley only): 50 rooms x 10 members x 40 msgs/s = 180 000 deliveries/s offered, server on one core',
};
// threads1/threads2 rows are shown together.
for (const r of rows) if (r.name === 'threads1' || r.name === 'threads2') { r.threads = Number(r.name.slice(7)); r.name = 'threads'; }
for (const name of Object.keys(titles)) {
  const rs = by(name);
  if (!rs.length) continue;
  out.push(`## ${name}`, '', titles[name], '');
  if (name === 'churn') {
    out.push('| server | cycles/s | handshake p50 ms | p99 ms | p99.9 ms | server CPU µs/cycle | errors | generator CPU |');
    out.push('|---|---:|---:|---:|---:|---:|---:|---:|');
    for (const r of rs)
      out.push(`| ${r.server} | ${f(r.cycles_per_s)} | ${f(r.p50_ms, 3)} | ${f(r.p99_ms, 3)} | ${f(r.p999_ms, 3)} | ${f(r.server_cpu_us_per_cycle, 1)} | ${r.errors ?? 'n/a'} | ${f(100 * r.gen_cpu_util)}% |`);
  } else if (name === 'idle') {
    out.push('| server | connections | failed | RSS before KiB | RSS joined KiB | RSS/conn KiB | projected RSS at 100 000 MiB | errors |');
    out.push('|---|---:|---:|---:|---:|---:|---:|---:|');
    for (const r of rs)
      out.push(`| ${r.server} | ${r.connections} | ${r.connect_failed} | ${r.server_rss_before_kib} | ${r.server_rss_joined_kib} | ${f(r.rss_per_conn_kib, 2)} | ${r.rss_per_conn_kib > 0 ? f((r.server_rss_before_kib + 100000 * r.rss_per_conn_kib) / 1024) : 'n/a'} | ${r.errors} |`);
  } else if (name === 'slow') {
    out.push('| server | slow readers | cut by the server | RSS joined KiB | RSS peak KiB | RSS at end of load KiB | RSS after KiB | deliveries/s (to readers) | errors |');
    out.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const r of rs)
      out.push(`| ${r.server} | ${r.slow} | ${r.slow_cut} | ${r.server_rss_joined_kib} | ${r.server_rss_peak_kib} | ${r.server_rss_end_kib} | ${r.server_rss_after_kib} | ${f(r.deliveries_per_s)} | ${r.errors} |`);
  } else if (name === 'threads') {
    out.push('| threads | deliveries/s | p50 ms | p99 ms | server CPU | server CPU µs/delivery | generator CPU | errors |');
    out.push('|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const r of rs)
      out.push(`| ${r.threads} | ${f(r.deliveries_per_s)} | ${f(r.p50_ms, 3)} | ${f(r.p99_ms, 3)} | ${f(100 * r.server_cpu_util)}% | ${f(r.server_cpu_us_per_delivery, 3)} | ${f(100 * r.gen_cpu_util)}% | ${r.errors} |`);
  } else {
    out.push('| server | deliveries/s | p50 ms | p99 ms | p99.9 ms | server CPU µs/delivery | server CPU | RSS/conn KiB | sent | skipped | errors | generator CPU | generator µs/delivery |');
    out.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const r of rs)
      out.push(`| ${r.server} | ${f(r.deliveries_per_s)} | ${f(r.p50_ms, 3)} | ${f(r.p99_ms, 3)} | ${f(r.p999_ms, 3)} | ${f(r.server_cpu_us_per_delivery, 3)} | ${f(100 * r.server_cpu_util)}% | ${f(r.rss_per_conn_kib, 1)} | ${r.sent} | ${r.skipped} | ${r.errors} | ${f(100 * r.gen_cpu_util)}% | ${f(r.gen_cpu_us_per_delivery, 3)} |`);
  }
  out.push('');
}

// Targets from issue 10.
const ratio = (a, b) => (a > 0 && b > 0 ? a / b : NaN);
const t = [];
const check = (what, ok, detail) =>
  t.push(`| ${what} | ${Number.isNaN(ok) || ok === null ? 'n/a' : ok ? 'met' : '**missed**'} | ${detail} |`);
const pf = get('fanout', 'parley');
for (const peer of ['go', 'node']) {
  const p = get('fanout', peer);
  const x = ratio(pf?.deliveries_per_s, p?.deliveries_per_s);
  check(`fan-out deliveries/s ≥ 5× ${peer}`, Number.isNaN(x) ? NaN : x >= 5, Number.isNaN(x) ? 'no data' : `${x.toFixed(2)}×`);
}
for (const sc of ['fanout', 'fanout32k', 'bigroom']) {
  const p = get(sc, 'parley'), c = get(sc, 'c-floor');
  const x = ratio(p?.server_cpu_us_per_delivery, c?.server_cpu_us_per_delivery);
  check(`server CPU per delivery ≤ 1.3× C floor (${sc})`, Number.isNaN(x) ? NaN : x <= 1.3, Number.isNaN(x) ? 'no data' : `${x.toFixed(2)}× (${f(p.server_cpu_us_per_delivery, 3)} vs ${f(c.server_cpu_us_per_delivery, 3)} µs)`);
}
{
  const b = get('bigroom', 'parley');
  check('big room ≥ 1 M deliveries/s on one core', b ? b.deliveries_per_s >= 1e6 : NaN, b ? `${f(b.deliveries_per_s)}/s` : 'no data');
}
{
  const p = get('fanout32k', 'parley'), c = get('fanout32k', 'c-floor');
  const x = ratio(p?.p99_ms, c?.p99_ms);
  check('p99 at 32 000 deliveries/s ≤ 1.5× C floor', Number.isNaN(x) ? NaN : x <= 1.5, Number.isNaN(x) ? 'no data' : `${x.toFixed(2)}× (${f(p.p99_ms, 3)} vs ${f(c.p99_ms, 3)} ms)`);
  for (const peer of ['go', 'node']) {
    const q = get('fanout32k', peer);
    if (p && q) check(`p99 at 32 000 deliveries/s below ${peer}`, p.p99_ms < q.p99_ms, `${f(p.p99_ms, 3)} vs ${f(q.p99_ms, 3)} ms`);
  }
}
{
  const i = get('idle', 'parley');
  check('idle ≤ 4 KiB RSS per connection', i ? i.rss_per_conn_kib <= 4 : NaN, i ? `${f(i.rss_per_conn_kib, 2)} KiB` : 'no data');
  check('18 000 concurrent joined connections on one parleyd', i ? i.connections >= 18000 && i.connect_failed === 0 && i.errors === 0 : NaN, i ? `${i.connections - i.connect_failed} joined, ${i.errors} errors; projected ${f((i.server_rss_before_kib + 100000 * i.rss_per_conn_kib) / 1024)} MiB RSS at 100 000` : 'no data');
}
{
  const p = get('churn', 'parley'), g = get('churn', 'go');
  const x = ratio(p?.cycles_per_s, g?.cycles_per_s);
  check('churn ≥ 2× Go', Number.isNaN(x) ? NaN : x >= 2, Number.isNaN(x) ? 'no data' : `${x.toFixed(2)}× (${f(p.cycles_per_s)} vs ${f(g.cycles_per_s)} cycles/s)`);
}
{
  const s = get('slow', 'parley');
  if (s) {
    const grown = s.server_rss_after_kib - s.server_rss_joined_kib;
    check('slow readers: cut, RSS bounded and back near baseline', s.slow_cut === s.slow && grown < 16 * 1024, `${s.slow_cut}/${s.slow} cut; RSS ${s.server_rss_joined_kib} → peak ${s.server_rss_peak_kib} → after ${s.server_rss_after_kib} KiB`);
  }
  const t1 = rows.find((r) => r.name === 'threads' && r.threads === 1), t2 = rows.find((r) => r.name === 'threads' && r.threads === 2);
  if (t1 && t2) {
    const x = ratio(t2.server_cpu_us_per_delivery, t1.server_cpu_us_per_delivery);
    t.push(`| threads: 2 vs threads: 1 at a fixed rate (CPU per delivery) | measured | ${x.toFixed(2)}× (${f(t2.server_cpu_us_per_delivery, 3)} vs ${f(t1.server_cpu_us_per_delivery, 3)} µs) |`);
  }
  const gen = rows.filter((r) => r.server === 'parley' && r.gen_cpu_us_per_delivery > 0 && r.server_cpu_us_per_delivery > 0 && ['fanout', 'bigroom'].includes(r.name));
  for (const r of gen)
    check(`generator cheaper per delivery than parley (${r.name})`, r.gen_cpu_us_per_delivery < r.server_cpu_us_per_delivery, `${f(r.gen_cpu_us_per_delivery, 3)} vs ${f(r.server_cpu_us_per_delivery, 3)} µs`);
}
out.push('## Targets (issue 10)', '', '| target | status | measured |', '|---|---|---|', ...t, '');
const bad = rows.filter((r) => r.errors > 0 || r.bench_failed || r.start_failed || r.connect_failed > 0);
if (bad.length) {
  out.push('Runs with errors or failed connections:', '');
  for (const r of bad)
    out.push(`- ${r.server}/${r.name}: errors ${r.errors ?? 'n/a'}, connect_failed ${r.connect_failed ?? 'n/a'}, handshake_errors ${r.handshake_errors ?? 'n/a'}, closed ${r.closed ?? 'n/a'}${r.bench_failed ? ', parley-bench failed' : ''}${r.start_failed ? ', server did not start' : ''}`);
  out.push('');
}
out.push('## How to read this (caveats that hold for every run)', '');
out.push(
  '- Saturated scenarios report what the server delivered while the generator offered more. When a server delivers (nearly) everything offered — sent × (members − 1) over the window — the number is a lower bound set by the generator on one core, not the server\'s ceiling; the generator CPU column shows how close the generator was to its own limit.',
  '- The C floor is featureless but not naive: like parley it corks, appending a loop iteration\'s frames for a connection to one buffer and writing each touched connection once per iteration (parley does the same with writev over refcounted frames).',
  '- The Go peer follows gorilla\'s chat example: a member whose 1024-message channel is full is disconnected, which is where its fan-out errors come from under overload.',
  '- RSS per connection is (server RSS with every connection joined − RSS before connecting) / connections: user memory only, kernel socket buffers not included.',
  '- Latency is end to end (send timestamp in the payload, CLOCK_MONOTONIC on one host), histogram buckets ~6% wide; under saturation it measures queueing, not the relay.',
  '',
);
process.stdout.write(out.join('\n') + '\n');
