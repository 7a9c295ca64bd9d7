// `--json` (README: every read command takes --json, for scripts): a refusal is JSON on stdout too,
// never the plain "rejected: …" / "invalid: …" lines, which a script's JSON.parse chokes on.
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../scripts/cli.ts';
import type { Io } from '../../scripts/args.ts';

async function pinwave(args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const io: Io = { out: (l) => void out.push(l), err: (l) => void err.push(l), env: { PINWAVE_API: 'http://127.0.0.1:9', PINWAVE_TOKEN: 'x'.repeat(32) }, tty: false };
  return { code: await run(args, io), stdout: out.join('\n'), stderr: err.join('\n') };
}

t.test('bundle upload --json: a file that is no bundle is refused with a JSON answer, exit 1', async (t) => {
  const file = join(t.testdir(), 'junk.cose');
  writeFileSync(file, Buffer.from([0xa1, 0x01]));
  const r = await pinwave(['bundle', 'upload', file, '--json']);
  t.equal(r.code, 1);
  t.match(JSON.parse(r.stdout), { ok: false, reason: 'malformed', detail: String });
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

t.test('devices revoke --json prints the revoked device as the API returns it, not a sentence', async (t) => {
  const { createServer } = await import('node:http');
  const seen: string[] = [];
  const server = createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ id: 'th-1', group: 'thermostats', state: 'revoked', revokedAt: 1 }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const api = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  const r = await pinwave(['devices', 'revoke', 'th-1', '--json', '--api', api]);
  t.equal(r.code, 0, r.stderr);
  t.same(seen, ['DELETE /v1/devices/th-1']);
  t.match(JSON.parse(r.stdout), { id: 'th-1', state: 'revoked' });
  t.match((await pinwave(['devices', 'revoke', 'th-1', '--api', api])).stdout, /^revoked th-1: disconnected/, 'without --json, as before');
});
