// The operator docs stay true to the code: the configuration reference names every key the loader
// accepts and every environment variable it reads, and the README links the operator docs.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { CONFIG_KEYS } from '../gateway/config.ts';
import { ALERT_EVENT_NAMES } from '../gateway/alerts.ts';

const read = (p: string) => readFileSync(new URL(`../${p}`, import.meta.url), 'utf8');

t.test('docs/configuration.md describes every config key, environment variable and alert event', async (t) => {
  const doc = read('docs/configuration.md');
  t.ok(CONFIG_KEYS.length > 30, 'the loader lists its keys');
  for (const key of CONFIG_KEYS) t.ok(doc.includes(`\`${key}\``), `${key} is described`);
  const env = new Set([...read('gateway/config.ts').matchAll(/PINWAVE_[A-Z_]+/g)].map((m) => m[0]));
  t.ok(env.size >= 10);
  for (const name of env) t.ok(doc.includes(`\`${name}\``), `${name} is described`);
  for (const e of ALERT_EVENT_NAMES) t.ok(doc.includes(`\`${e}\``), `${e} is described`);
});

t.test('the README links the operator docs; the operations guide links the storage details', async (t) => {
  const readme = read('README.md');
  for (const d of ['docs/configuration.md', 'docs/operations.md', 'docs/runbook.md', 'docs/examples/pinwave.service']) t.ok(readme.includes(`(${d})`), `README links ${d}`);
  t.match(read('docs/operations.md'), /\(storage\.md\)/);
});

t.test('the runbook explains every reason a device can be stuck with, and every rejection reason', async (t) => {
  const runbook = read('docs/runbook.md');
  const { REJECT_REASONS } = await import('../firmware-manifest/codec.ts');
  for (const r of ['never_connected', 'offline', 'no_ack', 'failing', 'verifying', 'reverted:<host:port>', ...REJECT_REASONS.map((x) => `rejected:${x}`), 'rejected:apply_failed']) t.ok(runbook.includes(`\`${r}\``), `${r} is explained`);
});

t.test('the operations guide lists every metric the gateway exposes', async (t) => {
  const ops = read('docs/operations.md');
  const names = new Set([...read('gateway/http/metrics.ts').matchAll(/'(pinwave_[a-z0-9_]+)'/g)].map((m) => m[1]));
  t.ok(names.size > 30, 'the exposition names its metrics');
  for (const name of names) t.ok(ops.includes(`\`${name}\``) || ops.includes(`\`${name}{`), `${name} is listed`);
});
