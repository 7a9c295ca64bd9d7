// Benchmark of the operator console's rollout page (docs/architecture.md §10) on a 10,000-device
// rollout, in Debian's Chromium (scripts/chromium.ts): the bytes a first visit transfers (the page,
// its scripts and style, the first API answers and the event stream's snapshot), and the time from
// navigation to the first wave bar on screen, measured in the page (a MutationObserver, against the
// navigation's start). Goal: under 1 s. Printed beside the floors measured in the same run: a bare
// browser round trip to the same server, and the API's own answer for the same rollout.
//   npm run bench:console [-- --devices 10000 --runs 5]
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { parseArgs } from 'node:util';
import { formatPin, generateKeyPair } from '../firmware-manifest/index.ts';
import { hashToken } from '../gateway/credentials.ts';
import { Gateway } from '../gateway/gateway.ts';
import { buildServer } from '../gateway/http/server.ts';
import { launchChromium } from './chromium.ts';

const { values } = parseArgs({ options: { devices: { type: 'string', default: '10000' }, runs: { type: 'string', default: '5' } } });
const devices = Number(values.devices);
const runs = Number(values.runs);
if (!(Number.isSafeInteger(devices) && devices >= 1 && devices <= 100_000)) throw new Error(`--devices expects 1 to 100000, got ${values.devices}`);
if (!(Number.isSafeInteger(runs) && runs >= 1 && runs <= 50)) throw new Error(`--runs expects 1 to 50, got ${values.runs}`);

const TOKEN = 'bench-console-operator-token-0123456789';
const pin = (label: string) => formatPin(new Uint8Array(Buffer.from(label.padEnd(32, '.').slice(0, 32))));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ms = (x: number) => `${x.toFixed(0)} ms`;
const kib = (b: number) => `${(b / 1024).toFixed(1)} KiB`;

const dir = mkdtempSync(join(tmpdir(), 'pinwave-bench-console-'));
const keyPath = join(dir, 'signing.key');
writeFileSync(keyPath, generateKeyPair().privatePem, { mode: 0o600 });
const gw = await Gateway.start({ dataDir: join(dir, 'data'), keyPath, mqttPort: 0, tickIntervalMs: 0 });
const app = await buildServer({ gateway: gw, tokens: [{ name: 'bench', role: 'operator', hash: hashToken(TOKEN) }] });
// Every byte the server writes, on every connection, for the page's share of it.
let written = 0;
const open = new Set<Socket>();
app.server.on('connection', (s: Socket) => {
  open.add(s);
  s.on('close', () => (open.delete(s), (written += s.bytesWritten)));
});
const bytesOut = () => written + [...open].reduce((n, s) => n + s.bytesWritten, 0);
await app.listen({ host: '127.0.0.1', port: 0 });
const address = app.server.address();
const base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
const browser = await launchChromium();

try {
  const load = loadavg().map((x) => x.toFixed(2)).join(' ');
  console.log(`pinwave bench-console: node ${process.version}, ${cpus().length} cores, load average ${load}, ${browser.version()}`);
  for (let i = 0; i < devices; i += 10_000) {
    await gw.provision(Array.from({ length: Math.min(10_000, devices - i) }, (_, j) => ({ id: `th-${String(i + j).padStart(6, '0')}`, group: 'thermostats', model: 'th-100' })));
  }
  const bundle = await gw.createBundle({ group: 'thermostats', endpoints: [{ host: 'api.example.com', pins: [pin('new'), pin('backup')] }] }, 'bench');
  const { rollout } = await gw.createRollout({ bundle: bundle.id, target: { group: 'thermostats' }, start: true }, 'bench');
  console.log(`a rollout of ${devices.toLocaleString('en-US')} devices in ${rollout.waves.length} waves (${rollout.waves.map((w) => w.size.toLocaleString('en-US')).join(', ')}), running`);
  const url = `${base}/ui#/rollouts/${rollout.id}`;

  // The floors: the API's answer for this rollout, and a bare browser round trip to this server.
  const auth = { authorization: `Bearer ${TOKEN}` };
  const api: number[] = [];
  for (let i = 0; i < 20; i++) {
    const t0 = performance.now();
    await (await fetch(`${base}/v1/rollouts/${rollout.id}`, { headers: auth })).arrayBuffer();
    api.push(performance.now() - t0);
  }
  const bare: number[] = [];
  for (let i = 0; i < runs; i++) {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${base}/healthz`);
    bare.push(await page.evaluate(() => (performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming).responseEnd));
    await context.close();
  }

  const firstBar: number[] = [];
  let transferred = 0;
  let breakdown: Array<[string, number]> = [];
  for (let i = 0; i < runs; i++) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const signIn = await context.request.post(`${base}/ui/session`, { data: { token: TOKEN } });
    if (signIn.status() !== 201) throw new Error(`sign-in: ${signIn.status()}`);
    // When the first wave bar is in the document, against the navigation's start.
    await context.addInitScript(() => {
      new MutationObserver((_m, obs) => {
        if (document.querySelector('.wave .bar')) {
          (window as unknown as { firstBar: number }).firstBar = performance.now();
          obs.disconnect();
        }
      }).observe(document, { childList: true, subtree: true });
    });
    const page = await context.newPage();
    const cdp = await context.newCDPSession(page);
    await cdp.send('Network.enable');
    await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
    const urls = new Map<string, string>();
    const sizes = new Map<string, number>();
    cdp.on('Network.requestWillBeSent', (e) => urls.set(e.requestId, e.request.url.replace(base, '')));
    cdp.on('Network.dataReceived', (e) => sizes.set(e.requestId, (sizes.get(e.requestId) ?? 0) + e.encodedDataLength));
    cdp.on('Network.loadingFinished', (e) => sizes.set(e.requestId, e.encodedDataLength));
    const before = bytesOut();
    await page.goto(url);
    await page.waitForFunction(() => (window as unknown as { firstBar?: number }).firstBar !== undefined, undefined, { timeout: 30_000 });
    firstBar.push(await page.evaluate(() => (window as unknown as { firstBar: number }).firstBar));
    // What the page asks for once the bar is up (pin failures) is part of its first view.
    await page.waitForLoadState('networkidle').catch(() => {});
    await page.waitForTimeout(200);
    transferred = bytesOut() - before;
    breakdown = [...urls].map(([id, u]) => [u, sizes.get(id) ?? 0]);
    await context.close();
  }

  console.log('');
  console.log('time to the first wave bar (navigation start → bar in the document), cold cache:');
  console.log(`  median ${ms(median(firstBar))}, min ${ms(Math.min(...firstBar))}, max ${ms(Math.max(...firstBar))} over ${runs} runs  (goal < 1000 ms: ${median(firstBar) < 1000 ? 'met' : 'MISSED'})`);
  console.log(`  floors: a bare browser round trip to this server ${ms(median(bare))}; GET /v1/rollouts/:id from node ${median(api).toFixed(1)} ms`);
  console.log('');
  console.log(`bytes the server wrote for one visit of the rollout page (headers included, gzip): ${transferred.toLocaleString('en-US')} (${kib(transferred)})`);
  console.log('  as the browser counted them, per request (the event stream never ends, so its share is what the others leave of the server\'s count):');
  const counted = breakdown.reduce((n, [u, b]) => n + (u.endsWith('/events') ? 0 : b), 0);
  for (const [u, n] of breakdown) {
    const b = u.endsWith('/events') ? transferred - counted : n;
    console.log(`    ${String(b.toLocaleString('en-US')).padStart(8)}  ${u.length > 70 ? `${u.slice(0, 67)}...` : u}${u.endsWith('/events') ? '  (headers and the snapshot)' : ''}`);
  }
} finally {
  await browser.close();
  await app.close();
  await gw.stop();
  rmSync(dir, { recursive: true, force: true });
}
