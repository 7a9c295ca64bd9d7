import t from 'tap';
import { Writable } from 'node:stream';
import { prettyDestination, prettyLine } from '../../scripts/log-pretty.ts';
import { serve } from '../../scripts/commands/gateway.ts';
import { generateKeyPair } from '../../firmware-manifest/index.ts';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { until } from '../fixtures/gateway.ts';
import type { Io } from '../../scripts/args.ts';

t.test('a pino line as one readable line: time, level, component, message, then the fields', async (t) => {
  t.equal(
    prettyLine('{"level":40,"time":"2026-01-01T12:00:00.000Z","name":"pinwave","component":"gateway","rollout":"r-g-2-1x","wave":1,"reason":"failure_threshold","thresholds":{"ackThreshold":0.95},"msg":"rollout held"}'),
    '2026-01-01T12:00:00.000Z WARN  gateway  rollout held  rollout=r-g-2-1x wave=1 reason=failure_threshold thresholds={"ackThreshold":0.95}',
  );
  t.equal(prettyLine('{"level":30,"time":1767268800000,"msg":"stopped","note":"two words"}'), '2026-01-01T12:00:00.000Z INFO  -  stopped  note="two words"', 'epoch times too; values with spaces quoted');
  t.equal(prettyLine('not json'), 'not json', 'anything else as it came');
  const out: string[] = [];
  prettyDestination({ write: (s) => out.push(s) }).write('{"level":50,"time":"2026-01-01T00:00:00.000Z","msg":"a"}\n{"level":30,"time":"2026-01-01T00:00:00.000Z","msg":"b"}\n');
  t.same(out, ['2026-01-01T00:00:00.000Z ERROR -  a\n', '2026-01-01T00:00:00.000Z INFO  -  b\n']);
});

t.test('pinwave gateway --log-format pretty writes readable lines; a wrong format is a usage error', async (t) => {
  const dir = t.testdir();
  const keyPath = join(dir, 'signing.key');
  writeFileSync(keyPath, generateKeyPair().privatePem, { mode: 0o600 });
  const lines: string[] = [];
  const log = new Writable({ write: (c, _e, done) => (lines.push(...c.toString().split('\n').filter(Boolean)), done()) });
  const out: string[] = [];
  const io: Io = { out: (l) => void out.push(l), err: () => {}, env: {}, tty: false };
  let stop!: () => void;
  const until_ = new Promise<void>((resolve) => (stop = resolve));
  const done = serve(['--data', join(dir, 'data'), '--key', keyPath, '--mqtt-port', '0', '--http-port', '0', '--log-format', 'pretty'], io, { until: until_, log });
  await until(() => out.some((l) => l.startsWith('http listening')), 10_000, 'the start');
  stop();
  t.equal(await done, 0);
  t.ok(lines.some((l) => /^\d{4}-\d\d-\d\dT[\d:.]+Z INFO {2}- {2}pinwave gateway started {2}version=/.test(l)), 'the start line, readable');
  t.ok(lines.some((l) => /^\d{4}-.+Z INFO {2}- {2}stopped {2}ms=\d+ code=0$/.test(l)), 'the stop line');
  t.notOk(lines.some((l) => l.startsWith('{')), 'no JSON');
  const bad: string[] = [];
  const code = await serve(['--data', join(dir, 'data'), '--key', keyPath, '--log-format', 'xml'], { ...io, err: (l) => void bad.push(l) }).catch((e: Error) => e);
  t.match(code, { name: 'UsageError', message: '--log-format expects json or pretty, got "xml"' });
});
