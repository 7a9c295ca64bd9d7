// The denial log's bounds (docs/architecture.md §5): every refusal counted, log lines bounded per window.
import t from 'tap';
import { DenialLog } from '../../../gateway/broker/denials.ts';

function recorder() {
  const lines: Array<{ level: 'info' | 'warn'; obj: Record<string, unknown>; msg?: string }> = [];
  return {
    lines,
    logger: {
      info: (obj: Record<string, unknown>, msg?: string) => lines.push({ level: 'info', obj, msg }),
      warn: (obj: Record<string, unknown>, msg?: string) => lines.push({ level: 'warn', obj, msg }),
    },
  };
}

t.test("a device's first refusal of a window is logged as it happens; the rest are counted into one summary", async (t) => {
  const r = recorder();
  const log = new DenialLog({ logger: r.logger });
  log.record('m-1', 'subscribe', { topic: `#${'x'.repeat(300)}` }, 'ACL denied');
  t.equal(r.lines.length, 1);
  t.match(r.lines[0], { level: 'info', obj: { deviceId: 'm-1', denial: 'subscribe' }, msg: 'ACL denied' });
  t.equal((r.lines[0].obj.topic as string).length, 100, 'attacker-chosen text is cut to 100 characters');
  for (let i = 0; i < 1000; i++) log.record('m-1', 'subscribe', { topic: `a/${i}` });
  log.record('m-1', 'publish_topic', { topic: 'x' });
  log.record('m-1', 'disconnected', { denials: 100 });
  t.equal(r.lines.length, 1, 'nothing more until the window ends');
  log.flush();
  t.equal(r.lines.length, 2);
  t.same(r.lines[1].obj, { deviceId: 'm-1', denials: { subscribe: 1001, publish_topic: 1, disconnected: 1 }, total: 1003, topics: ['a/0', 'a/1', 'a/2'] });
  log.flush();
  t.equal(r.lines.length, 2, 'a quiet window writes nothing');
  log.record('m-1', 'subscribe', { topic: 'again' });
  t.equal(r.lines.length, 3, 'the next window starts afresh');
  log.flush();
  t.equal(r.lines.length, 3, 'a device logged once in a window needs no summary');
});

t.test('across devices at most maxLines lines of each sort are written per window, and nothing goes uncounted', async (t) => {
  const r = recorder();
  const log = new DenialLog({ logger: r.logger, maxLines: 5, maxDevices: 8 });
  // 10 devices, 3 refusals each; and connections that never said who they were
  for (let i = 0; i < 10; i++) for (let k = 0; k < 3; k++) log.record(`m-${i}`, 'connect_refused', { refusal: 'bad_credentials' });
  log.record(undefined, 'oversized_frame');
  t.equal(r.lines.length, 5, 'five lines as they happened, one per device, then none');
  log.flush();
  const summaries = r.lines.slice(5).filter((l) => l.level === 'info');
  t.equal(summaries.length, 5, 'five summaries at most');
  const rest = r.lines.at(-1)!;
  t.equal(rest.level, 'warn');
  // Tracked one by one: m-0..m-7. Logged as they happened: m-0..m-4, summarised: the same five
  // (3 each, their first included). Added up: m-5..m-7 (beyond the summaries, 3 each) and the
  // devices beyond maxDevices, m-8, m-9 and the anonymous connection (3 + 3 + 1).
  t.same(summaries.map((l) => [l.obj.deviceId, l.obj.total]), [0, 1, 2, 3, 4].map((i) => [`m-${i}`, 3]));
  t.same(rest.obj, { devices: 3 + 3, denials: 3 * 3 + 7 }, 'the devices beyond the bounds are added up together');
  const counted = summaries.reduce((n, l) => n + (l.obj.total as number), 0) + (rest.obj.denials as number);
  t.equal(counted, 10 * 3 + 1, 'every refusal is counted once');
});
