// The gateway's parts (docs/architecture.md §1): each takes its collaborators as constructor
// arguments and none reaches back through the facade; the rollout engine and its policy are pure
// (docs/architecture.md §6), importing nothing but each other (and two leaves: node:crypto, and
// firmware-manifest/endpoint-text.ts, which imports nothing).
import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const GATEWAY = fileURLToPath(new URL('../../gateway/', import.meta.url));

function imports(path: string): string[] {
  const src = readFileSync(path, 'utf8');
  return [...src.matchAll(/^(?:import|export)\b[^;]*?\bfrom\s+'([^']+)'/gms)].map((m) => m[1]);
}

const ts = (dir: string) => readdirSync(GATEWAY + dir).filter((f) => f.endsWith('.ts'));

t.test('no part of the gateway imports the facade', async (t) => {
  const parts = ts('').filter((f) => f !== 'gateway.ts' && f !== 'index.ts');
  t.ok(parts.includes('rollouts.ts') && parts.includes('ingest.ts') && parts.includes('delivery.ts'), 'the parts are where §1 says');
  for (const f of parts) {
    const bad = imports(GATEWAY + f).filter((p) => p === './gateway.ts' || p === './index.ts');
    t.same(bad, [], `${f} does not import the facade`);
  }
});

/** What the engine may import from outside gateway/rollout/: the seed order's hash, and how an endpoint is written (a leaf). */
const ENGINE_OUTSIDE = ['node:crypto', '../../firmware-manifest/endpoint-text.ts'];

t.test('the rollout engine and its policy import only each other (and node:crypto for the seed order, endpoint-text for how an endpoint is written)', async (t) => {
  for (const f of ts('rollout/')) {
    const bad = imports(GATEWAY + 'rollout/' + f).filter((p) => !(p.startsWith('./') && !p.includes('/', 2)) && !ENGINE_OUTSIDE.includes(p));
    t.same(bad, [], `rollout/${f} imports nothing outside gateway/rollout/`);
  }
  t.same(imports(fileURLToPath(new URL('../../firmware-manifest/endpoint-text.ts', import.meta.url))), [], 'endpoint-text.ts imports nothing: it brings no I/O into the engine');
});

t.test('the facade holds no rollout policy: no engine call and no store write of its own', async (t) => {
  const src = readFileSync(GATEWAY + 'gateway.ts', 'utf8');
  t.notMatch(src, /\bengine\.(?!ts\b)[a-zA-Z]/, 'no engine call');
  t.notMatch(src, /rollout\/policy/, 'no policy import');
  t.notMatch(src, /#store\.(put(?!Telemetry)|update|set|revoke|allocate)/, 'no store write beyond flushing telemetry at stop');
});
