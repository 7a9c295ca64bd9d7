import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { apply, checkChain, type TrustState } from '../../firmware-manifest/trust-state.ts';
import { REJECT_REASONS } from '../../firmware-manifest/codec.ts';
import { decodeAck, decodeAnyAck, decodeAnyState, decodeState, decodeTelemetry } from '../../firmware-manifest/messages.ts';
import { GENERATED, vectorFiles } from '../../scripts/gen-vectors.ts';
import type { BundleVector, ChainVector, MessageVector } from '../../firmware-manifest/vectors.ts';

const dir = new URL('../../firmware-manifest/vectors/', import.meta.url).pathname;
const docs = new URL('../../docs/', import.meta.url).pathname;

t.test('the committed vector files are exactly what the generator writes', async (t) => {
  const expected = vectorFiles();
  const present = readdirSync(dir).filter((f) => GENERATED.test(f)).sort();
  t.same(present, [...expected.keys()].sort(), 'the same files (run `npm run vectors` after changing the codec)');
  for (const [name, content] of expected) {
    const onDisk = readFileSync(join(dir, name));
    if (typeof content === 'string') t.equal(onDisk.toString('utf8'), content, name);
    else t.ok(onDisk.equals(content), `${name}: the same bytes`);
  }
});

const vectors: BundleVector[] = readdirSync(dir)
  .filter((f) => f.startsWith('bundle-') && f.endsWith('.json'))
  .map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')));
const byName = new Map(vectors.map((v) => [v.name, v]));

t.test('each bundle ships as raw bytes beside its JSON, for C harnesses', async (t) => {
  for (const v of vectors) t.equal(readFileSync(join(dir, `bundle-${v.name}.cbor`)).toString('hex'), v.bundle, v.name);
});

t.test('every rejection reason has a vector, and there are valid ones', async (t) => {
  const reasons = new Set(vectors.map((v) => (v.expected.result === 'rejected' ? v.expected.reason : 'applied')));
  for (const r of [...REJECT_REASONS, 'applied']) t.ok(reasons.has(r), r);
  t.ok(vectors.some((v) => v.laxLibraryAccepts), 'includes envelopes a lax library would accept');
  t.notOk(vectors.some((v) => v.laxLibraryAccepts && v.expected.result === 'applied'), 'a lax flag only on bundles a device must reject');
});

t.test('apply() gives each vector its expected outcome, from the file alone', async (t) => {
  for (const v of vectors) {
    const r = apply(v.stateBefore as TrustState, new Uint8Array(Buffer.from(v.bundle, 'hex')), v.now);
    if (v.expected.result === 'applied') {
      if (!r.ok) {
        t.fail(`${v.name}: ${r.reason} ${r.detail}`);
        continue;
      }
      t.equal(r.id, v.expected.bundleId, `${v.name}: bundle id`);
      t.same(r.state, v.expected.stateAfter, `${v.name}: state after`);
    } else {
      t.equal(r.ok ? 'applied' : r.reason, v.expected.reason, v.name);
    }
  }
});

/** The table rows under `heading`, up to the next heading, whose first cell matches `first`. */
function tableRows(markdown: string, heading: string, first: RegExp): string[][] {
  const start = markdown.indexOf(`\n${heading}\n`);
  if (start < 0) throw new Error(`no heading "${heading}"`);
  const body = markdown.slice(start + heading.length + 2);
  const next = body.search(/^#{1,6} /m);
  const section = next < 0 ? body : body.slice(0, next);
  return section
    .split('\n')
    .filter((l) => l.startsWith('|'))
    .map((l) => l.slice(1, -1).split('|').map((c) => c.trim()))
    .filter((cells) => first.test(cells[0]));
}
const names = (cell: string) => [...cell.matchAll(/`([a-z0-9-]+)`/g)].map((m) => m[1]);
const reasonOf = (cell: string) => (cell === '(accepted)' ? 'applied' : cell.replace(/`/g, ''));

t.test('every rule of the bundle format has a vector that tests it, with the rule\'s outcome', async (t) => {
  const format = readFileSync(join(docs, 'bundle-format.md'), 'utf8');
  const listing = readFileSync(join(docs, 'conformance-vectors.md'), 'utf8');
  // The rules as docs/bundle-format.md numbers them, in its four tables.
  const rules = new Map<string, string>();
  for (const h of ['### 1. Envelope (before the signature)', '### 2. Key and signature', '### 3. Payload (after the signature)', '### 4. Device checks']) {
    for (const [n, reason] of tableRows(format, h, /^\d+$/)) rules.set(n, reasonOf(reason));
  }
  t.equal(rules.size, 44, 'bundle-format.md lists 44 rules');
  t.same([...rules.keys()].map(Number), Array.from({ length: rules.size }, (_, i) => i + 1), 'numbered 1 to 44 without a gap');
  const mapped = tableRows(listing, '## Rules and their vectors', /^\d+$/);
  t.same(mapped.map(([n, reason]) => [n, reasonOf(reason)]), [...rules], 'conformance-vectors.md maps every rule, with the reason bundle-format.md gives it');
  const used = new Set<string>();
  for (const [n, reason, cell] of mapped) {
    const want = reasonOf(reason);
    const listed = names(cell);
    for (const name of listed) {
      used.add(name);
      const v = byName.get(name);
      if (!v) {
        t.fail(`rule ${n}: no vector file bundle-${name}.json`);
        continue;
      }
      // Boundary vectors of a rejection rule are accepted bundles; a rule's rejected vectors give its reason.
      if (v.expected.result === 'rejected') t.equal(v.expected.reason, want, `rule ${n}: ${name} is rejected as ${want}`);
    }
    const outcome = want === 'applied' ? 'applied' : 'rejected';
    t.ok(listed.some((name) => byName.get(name)?.expected.result === outcome), `rule ${n} (${want}) has a vector with that outcome`);
  }
  // What an accepted bundle does to the state (docs/bundle-format.md, apply and key rotation).
  for (const [n, , cell] of tableRows(listing, '## Rules and their vectors', /^A\d+$/)) {
    const listed = names(cell);
    t.ok(listed.length > 0 && listed.every((name) => byName.get(name)?.expected.result === 'applied'), `${n}: applied vectors`);
    for (const name of listed) used.add(name);
  }
  t.same(vectors.map((v) => v.name).filter((n) => !used.has(n)), [], 'every bundle vector tests a rule the table names');
});

const chain: ChainVector[] = JSON.parse(readFileSync(join(dir, 'chain.json'), 'utf8'));

t.test('checkChain gives each chain vector its expected verdict, from the file alone', async (t) => {
  t.ok(chain.length > 0);
  for (const v of chain) t.equal(checkChain(v.state, v.host, v.port, v.servedPins, v.now), v.expected, v.name);
  const verdicts = new Set(chain.map((v) => v.expected));
  for (const r of ['ok', 'pin_mismatch', 'report_only_mismatch', 'expired_fallback', 'not_pinned']) t.ok(verdicts.has(r as never), `a vector for ${r}`);
});

t.test('every step of checkChain has a vector', async (t) => {
  const format = readFileSync(join(docs, 'bundle-format.md'), 'utf8');
  const section = format.slice(format.indexOf('## Pin checking on TLS handshakes'), format.indexOf('## Key rotation'));
  const steps = [...section.matchAll(/^(\d+)\. \*\*/gm)].map((m) => `C${m[1]}`);
  t.equal(steps.length, 8, 'bundle-format.md lists 8 steps');
  const listing = readFileSync(join(docs, 'conformance-vectors.md'), 'utf8');
  const mapped = tableRows(listing, '## checkChain vectors', /^C\d+$/);
  t.same(mapped.map(([step]) => step), steps, 'conformance-vectors.md maps every step');
  const known = new Set(chain.map((v) => v.name));
  const used = new Set<string>();
  for (const [step, , cell] of mapped) {
    const listed = names(cell);
    t.ok(listed.length > 0, `${step} has a vector`);
    for (const name of listed) {
      used.add(name);
      t.ok(known.has(name), `${step}: ${name} is in chain.json`);
    }
  }
  t.same([...known].filter((n) => !used.has(n)), [], 'every chain vector tests a step the table names');
});

t.test('message vectors decode to what they say, and invalid ones are refused', async (t) => {
  const list: MessageVector[] = JSON.parse(readFileSync(join(dir, 'messages.json'), 'utf8'));
  const decoders = { state: decodeAnyState, ack: decodeAnyAck, telemetry: decodeTelemetry };
  for (const v of list) {
    const r = decoders[v.kind](new Uint8Array(Buffer.from(v.hex, 'hex')));
    if (v.decoded === null) t.notOk(r.ok, `${v.name} is refused`);
    else t.same(r, { ok: true, message: v.decoded }, v.name);
  }
  for (const status of ['applied', 'rejected', 'verified', 'reverted']) t.ok(list.some((v) => v.kind === 'ack' && (v.decoded as { status?: string } | null)?.status === status), `a vector for the ${status} ack`);
  t.ok(list.some((v) => v.kind === 'state' && v.decoded !== null && 'provisional' in v.decoded), 'a vector for a state during a provisional window');
});

t.test('the readers of a gateway that does not count health checks take every other vector and refuse the health-checked ones', async (t) => {
  const list: MessageVector[] = JSON.parse(readFileSync(join(dir, 'messages.json'), 'utf8'));
  const decoders = { state: decodeState, ack: decodeAck, telemetry: decodeTelemetry };
  for (const v of list) {
    const r = decoders[v.kind](new Uint8Array(Buffer.from(v.hex, 'hex')));
    if (v.decoded === null || v.healthCheck) t.notOk(r.ok, `${v.name} is refused`);
    else t.same(r, { ok: true, message: v.decoded }, v.name);
  }
});
