// `--json` (README: every read command takes --json, for scripts): a refusal is JSON on stdout too,
// never the plain "rejected: …" / "invalid: …" lines, which a script's JSON.parse chokes on.
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { standIn } from '../fixtures/stand-in.ts';
import { run } from '../../scripts/cli.ts';
import type { Io } from '../../scripts/args.ts';

async function pinwave(args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const io: Io = { out: (l) => void out.push(l), err: (l) => void err.push(l), env: { PINWAVE_API: 'http://127.0.0.1:9', PINWAVE_TOKEN: 'x'.repeat(32) }, tty: false };
  return { code: await run(args, io), stdout: out.join('\n'), stderr: err.join('\n') };
}

/** A stand-in gateway that answers every request with `status` and `body` (JSON); its URL. */
const answering = (t: Tap.Test, status: number, body: object) =>
  standIn(t, (_req, res) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  });

t.test('bundle upload --json: a file that is no bundle is refused with a JSON answer, exit 1', async (t) => {
  const file = join(t.testdir(), 'junk.cose');
  writeFileSync(file, Buffer.from([0xa1, 0x01]));
  const r = await pinwave(['bundle', 'upload', file, '--json']);
  t.equal(r.code, 1);
  t.match(JSON.parse(r.stdout), { ok: false, reason: 'malformed', detail: /^.*junk\.cose is not a pinwave bundle: expected a COSE_Sign1 message \(CBOR tag 18\) that signs a pin bundle, found bytes that are not CBOR \(they start a101\)$/ }, "in bundle inspect's words");
  const plain = await pinwave(['bundle', 'upload', file]);
  t.match(plain.stdout, /^rejected: malformed$/, 'without --json, as before');
});

t.test('manifest push --json: an invalid manifest is refused with a JSON answer naming every problem, exit 1', async (t) => {
  const file = join(t.testdir(), 'bad.json');
  writeFileSync(file, JSON.stringify({ model: 'm', color: 'red' }));
  const r = await pinwave(['manifest', 'push', file, '--json']);
  t.equal(r.code, 1);
  const answer = JSON.parse(r.stdout);
  t.match(answer, { ok: false, file, errors: [] });
  t.ok(answer.errors.some((e: { path: string; message: string }) => /unknown field "color"/.test(e.message)), 'the problems, with their paths');
  t.match((await pinwave(['manifest', 'push', file])).stdout, /^invalid: /, 'without --json, as before');
});

t.test('manifest push --json: any other failure (a file that is no JSON, a gateway that cannot be reached or refuses it) is JSON too, exit 1', async (t) => {
  const dir = t.testdir();
  const sha = (s: string) => 'sha256/' + createHash('sha256').update(s).digest('base64');
  const file = join(dir, 'm.json');
  writeFileSync(file, JSON.stringify({ model: 'th-100', firmware: '1.0.0', trustedKeys: [Buffer.alloc(32, 7).toString('base64')], pins: [{ host: 'api.example.com', pins: [sha('a'), sha('b')] }] }));
  const unreachable = await pinwave(['manifest', 'push', file, '--json']);
  t.equal(unreachable.code, 1);
  t.equal(unreachable.stderr, '', 'nothing in plain text');
  const answer = JSON.parse(unreachable.stdout);
  t.match(answer, { ok: false, file, errors: [{ path: '', message: /^cannot reach the gateway at http:\/\/127\.0\.0\.1:9: port 9 is one that fetch refuses/ }] });
  t.equal(answer.errors.length, 1);

  const api = await answering(t, 409, { statusCode: 409, error: 'Conflict', code: 'PW_CONFLICT', message: "the gateway's config has a different manifest for model \"th-100\" firmware \"1.0.0\", and the config's wins" });
  const conflict = await pinwave(['manifest', 'push', file, '--json', '--api', api]);
  t.equal(conflict.code, 1);
  t.equal(conflict.stderr, '');
  t.same(JSON.parse(conflict.stdout), { ok: false, file, errors: [{ path: '', message: "409 Conflict: the gateway's config has a different manifest for model \"th-100\" firmware \"1.0.0\", and the config's wins" }] });
  t.match((await pinwave(['manifest', 'push', file, '--api', api])).stderr, /^pinwave manifest: 409 Conflict: /, 'without --json, as before');

  const notJson = join(dir, 'not.json');
  writeFileSync(notJson, '{ model');
  const r = await pinwave(['manifest', 'push', notJson, '--json']);
  t.equal(r.code, 1);
  t.match(JSON.parse(r.stdout), { ok: false, file: notJson, errors: [{ path: '', message: /not\.json is not JSON: / }] });
  t.equal((await pinwave(['manifest', 'push', '--json'])).code, 2, 'a usage error stays one (exit 2, the usage on standard error)');
});

t.test('devices revoke --json prints the revoked device as the API returns it, not a sentence', async (t) => {
  const seen: string[] = [];
  const api = await standIn(t, (req, res) => {
    seen.push(`${req.method} ${req.url}`);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(req.method === 'DELETE' ? { id: 'th-1', group: 'thermostats', state: 'revoked', revokedAt: 1 } : { id: 'th-1', group: 'thermostats', state: 'offline', revokedAt: null }));
  });
  const r = await pinwave(['devices', 'revoke', 'th-1', '--json', '--api', api]);
  t.equal(r.code, 0, r.stderr);
  t.same(seen, ['GET /v1/devices/th-1', 'DELETE /v1/devices/th-1'], 'read first, to tell a revocation from a repeated one');
  t.match(JSON.parse(r.stdout), { id: 'th-1', state: 'revoked' });
  t.match((await pinwave(['devices', 'revoke', 'th-1', '--api', api])).stdout, /^revoked th-1: disconnected/, 'without --json, as before');
});

t.test('any command with --json: a failure it does not answer itself is JSON on stdout too, exit 1', async (t) => {
  const unreachable = await pinwave(['rollout', 'list', '--json']);
  t.equal(unreachable.code, 1);
  t.equal(unreachable.stderr, '', 'nothing in plain text');
  t.match(JSON.parse(unreachable.stdout), { ok: false, error: { message: /^cannot reach the gateway at http:\/\/127\.0\.0\.1:9: / } });
  t.notOk('status' in JSON.parse(unreachable.stdout).error, 'no HTTP status: nothing answered');

  const api = await answering(t, 404, { statusCode: 404, error: 'Not Found', code: 'PW_NOT_FOUND', message: 'no such device: "nope"' });
  const missing = await pinwave(['devices', 'show', 'nope', '--json', '--api', api]);
  t.equal(missing.code, 1);
  t.equal(missing.stderr, '');
  t.same(JSON.parse(missing.stdout), { ok: false, error: { message: '404 Not Found: no such device: "nope"', status: 404, code: 'PW_NOT_FOUND' } }, "the gateway's status and code");

  const plain = await pinwave(['devices', 'show', 'nope', '--api', api]);
  t.equal(plain.stdout, '', 'without --json, as before');
  t.match(plain.stderr, /^pinwave devices: 404 Not Found: no such device/);
  const usage = await pinwave(['devices', 'list', '--limit', '0', '--json']);
  t.equal(usage.code, 2, 'a usage error stays one');
  t.match(usage.stderr, /--limit expects/);
});
