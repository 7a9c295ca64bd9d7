// Rollout alerts to webhooks, against local HTTP receivers: a held rollout posts once with a valid
// signature; a receiver that is down is retried, counted, and never holds up the engine.
import t from 'tap';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTcpServer, type Socket } from 'node:net';
import { fleet, harness, newPins, until } from '../fixtures/gateway.ts';
import { Webhooks, webhookSignature } from '../../gateway/webhooks.ts';
import { metricsText } from '../../gateway/http/metrics.ts';
import type { RolloutAlert } from '../../gateway/alerts.ts';
import type { Logger } from '../../gateway/gateway.ts';

const SECRET = 'webhook-secret-for-the-test-0123';

interface Heard {
  headers: IncomingMessage['headers'];
  body: string;
}

/** A receiver on 127.0.0.1: `answer` decides each status (default 204). */
async function receiver(t: { teardown(fn: () => unknown): void }, answer: (n: number) => number = () => 204) {
  const heard: Heard[] = [];
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      heard.push({ headers: req.headers, body });
      res.statusCode = answer(heard.length);
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise((resolve) => server.close(resolve)));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}/hooks/secret-path-token`, heard };
}

/** A port nothing listens on: connections are refused. */
async function deadUrl(): Promise<string> {
  const s = createTcpServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as { port: number }).port;
  await new Promise((resolve) => s.close(resolve));
  return `http://127.0.0.1:${port}/hooks/secret-path-token`;
}

/** A receiver that accepts connections and never answers. */
async function tarpit(t: { teardown(fn: () => unknown): void }) {
  const sockets = new Set<Socket>();
  let connections = 0;
  const s = createTcpServer((sock) => {
    connections++;
    sockets.add(sock);
    sock.on('error', () => {});
  });
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const sock of sockets) sock.destroy();
    return new Promise((resolve) => s.close(resolve));
  });
  return { url: `http://127.0.0.1:${(s.address() as { port: number }).port}/hooks`, connections: () => connections };
}

function recordingLogger() {
  const lines: string[] = [];
  const at = (level: string) => (obj: object, msg?: string) => void lines.push(`${level} ${msg} ${JSON.stringify(obj)}`);
  const logger: Logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
  return { logger, lines };
}

const validSignature = (h: Heard, secret: string) => {
  const got = Buffer.from(String(h.headers['x-pinwave-signature']));
  const want = Buffer.from(`sha256=${createHmac('sha256', secret).update(h.body).digest('hex')}`);
  return got.length === want.length && timingSafeEqual(got, want);
};

/** Six devices that fail to apply: a 100% wave is held on the failure threshold once two have answered. */
async function heldRollout(t: Parameters<typeof harness>[0], over: Parameters<typeof harness>[1]) {
  const h = await harness(t, over);
  const devices = await fleet(h, 6, 'b', () => ({ flashFails: true }));
  await Promise.all(devices.map((d) => d.connect()));
  t.teardown(() => Promise.all(devices.map((d) => d.disconnect())));
  const bundle = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins }, 'olga');
  const { rollout } = await h.gw.createRollout({ bundle: bundle.id, target: { group: 'thermostats' }, waves: [{ size: '100%', minDevices: 2 }], start: true }, 'olga');
  await until(async () => (await h.gw.getRollout(rollout.id)).state === 'held', 10_000, 'the hold');
  return { h, rollout };
}

t.test('a held rollout posts once to the webhook, with a valid signature, the rollout, the wave and the reason', async (t) => {
  const r = await receiver(t);
  const { h, rollout } = await heldRollout(t, { webhooks: [{ url: r.url, events: ['rollout.held'], secret: SECRET }], name: 'gw-test' });
  // The alert is queued once the hold is committed, which a read of the rollout may see first.
  await until(() => r.heard.length > 0, 10_000, 'the post');
  await h.gw.webhooksIdle();
  t.equal(r.heard.length, 1, 'one post');
  const [post] = r.heard;
  t.ok(validSignature(post, SECRET), 'X-Pinwave-Signature is the HMAC-SHA256 of the body under the secret');
  t.notOk(validSignature(post, SECRET + 'x'), 'and not under another secret');
  t.equal(post.headers['content-type'], 'application/json');
  t.equal(post.headers['x-pinwave-event'], 'rollout.held');
  t.equal(post.headers['x-pinwave-attempt'], '1');
  const body = JSON.parse(post.body);
  t.equal(post.headers['x-pinwave-delivery'], body.id, 'the event id, for the receiver to drop duplicates by');
  t.match(body, {
    event: 'rollout.held',
    gateway: { name: 'gw-test', version: /^\d+\.\d+\.\d+/ },
    rollout: { id: rollout.id, state: 'held', bundle: { seq: 1, group: 'thermostats' }, target: { group: 'thermostats' }, waves: 1 },
    wave: { number: 1, index: 0 },
    reason: 'failure_threshold',
    actor: 'system',
  });
  t.equal(body.time, new Date(h.clock.t).toISOString(), 'the time, from the gateway clock');

  // Not subscribed: an abort posts nothing.
  await h.gw.abortRollout(rollout.id, 'olga');
  await h.gw.webhooksIdle();
  t.equal(r.heard.length, 1, 'events the webhook did not ask for are not sent');
});

t.test('each event the webhook asks for, in order: held, resumed (with its scope and thresholds), held again at once, aborted', async (t) => {
  const r = await receiver(t);
  const { h, rollout } = await heldRollout(t, { webhooks: [{ url: r.url, events: ['rollout.held', 'rollout.resumed', 'rollout.completed', 'rollout.aborted'], secret: SECRET }] });
  await h.gw.resumeRollout(rollout.id, 'olga', { failureThreshold: 0.01 }, 'remaining');
  await h.gw.abortRollout(rollout.id, 'olga');
  await h.gw.webhooksIdle();
  const bodies = r.heard.map((x) => JSON.parse(x.body));
  t.same(bodies.map((b) => b.event), ['rollout.held', 'rollout.resumed', 'rollout.held', 'rollout.aborted'], 'resumed comes before the hold it met at once');
  t.match(bodies[1], { actor: 'olga', scope: 'remaining', thresholds: { failureThreshold: 0.01 }, wave: { number: 1 } });
  t.match(bodies[3], { reason: 'operator', actor: 'olga' });
  t.equal(new Set(bodies.map((b) => b.id)).size, 4, 'an id per event');
});

t.test('a receiver that is down is retried with backoff and counted; secrets and URL paths stay out of the log', async (t) => {
  const { logger, lines } = recordingLogger();
  const url = await deadUrl();
  const { h } = await heldRollout(t, { logger, webhooks: [{ url, events: ['rollout.held'], secret: SECRET }], webhookDelivery: { attempts: 3, backoffMs: 5, maxBackoffMs: 20 } });
  await h.gw.webhooksIdle();
  const c = h.gw.webhookCounters()!;
  t.same(c.attempts, { ok: 0, http_error: 0, network_error: 3, timeout: 0 }, 'three attempts, each refused');
  t.same(c.deliveries, { delivered: 0, failed: 1, dropped: 0 });
  const metrics = metricsText(h.gw, {});
  t.match(metrics, /^pinwave_webhook_deliveries_total\{outcome="failed"\} 1$/m);
  t.match(metrics, /^pinwave_webhook_attempts_total\{result="network_error"\} 3$/m);
  t.equal(lines.filter((l) => l.includes('webhook delivery failed: will retry')).length, 2);
  t.equal(lines.filter((l) => l.startsWith('warn webhook delivery failed {')).length, 1, 'the last one says it gave up');
  const text = lines.join('\n');
  t.notOk(text.includes(SECRET), 'no secret in the log');
  t.notOk(text.includes('secret-path-token'), 'no URL path in the log: it may carry a token');
  t.ok(text.includes(new URL(url).origin), 'the webhook is named by its origin');
});

t.test('a receiver that never answers does not hold up the engine: the rollout is held, and the API answers, while the alert waits', async (t) => {
  const pit = await tarpit(t);
  const { h, rollout } = await heldRollout(t, { webhooks: [{ url: pit.url, secret: SECRET, events: ['rollout.held'] }], webhookDelivery: { timeoutMs: 60_000 } });
  await until(() => pit.connections() > 0, 5000, 'the webhook attempt');
  t.equal((await h.gw.getRollout(rollout.id)).state, 'held', 'held while its alert is still in flight');
  t.same(h.gw.webhookCounters()!.queued, [1], 'the alert still waits for its answer');
  t.same(h.gw.webhookCounters()!.deliveries, { delivered: 0, failed: 0, dropped: 0 });
  // A stop does not wait for it: the attempt is cut off and the alert counted dropped.
  await h.gw.stop();
  t.same(h.gw.webhookCounters()!.deliveries, { delivered: 0, failed: 0, dropped: 1 });
});

const alert = (event: RolloutAlert['event'] = 'rollout.held'): RolloutAlert => ({
  event,
  rollout: { id: 'r-g-1-x', state: 'held', bundle: { id: 'ab'.repeat(32), seq: 1, group: 'g' }, target: { devices: ['a', 'b'] } },
  wave: 2,
  waves: 4,
  reason: 'ack_threshold',
  actor: 'system',
});

t.test('a 5xx is retried with the same delivery id; a 4xx is given up on at once', async (t) => {
  const flaky = await receiver(t, (n) => (n === 1 ? 503 : 200));
  const refusing = await receiver(t, () => 410);
  const hooks = new Webhooks(
    [
      { url: flaky.url, events: ['rollout.held'], secret: SECRET },
      { url: refusing.url, events: ['rollout.held'], secret: 'another-secret-0123456789' },
    ],
    { gateway: { name: 'g', version: '1.0.0' }, backoffMs: 5, random: () => 0 },
  );
  t.teardown(() => hooks.close());
  hooks.emit(alert());
  await hooks.idle();
  t.same(flaky.heard.map((x) => x.headers['x-pinwave-attempt']), ['1', '2']);
  t.equal(flaky.heard[0].headers['x-pinwave-delivery'], flaky.heard[1].headers['x-pinwave-delivery'], 'a retry is the same delivery');
  t.equal(flaky.heard[0].body, flaky.heard[1].body, 'with the same body');
  t.equal(refusing.heard.length, 1, 'a 410 is not retried');
  t.ok(validSignature(refusing.heard[0], 'another-secret-0123456789'), 'each webhook signs with its own secret');
  t.equal(refusing.heard[0].headers['x-pinwave-signature'], webhookSignature('another-secret-0123456789', refusing.heard[0].body));
  t.same(hooks.counters().deliveries, { delivered: 1, failed: 1, dropped: 0 });
  t.same(hooks.counters().attempts, { ok: 1, http_error: 2, network_error: 0, timeout: 0 });
  t.match(JSON.parse(flaky.heard[0].body), { rollout: { target: { devices: 2 } }, wave: { number: 3, index: 2 } }, 'a device list is sent as its count');
});

/** A receiver that answers every post with `status` and `headers`. */
async function answering(t: { teardown(fn: () => unknown): void }, status: number, headers: Record<string, string>) {
  let posts = 0;
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    req.on('end', () => {
      posts++;
      res.writeHead(status, headers).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise((resolve) => server.close(resolve)));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}/hooks`, posts: () => posts };
}

t.test('a redirect is given up on, the log saying it is not followed and naming its Location (its query left out)', async (t) => {
  const moved = await answering(t, 307, { location: 'https://new.example.com/hooks?token=s3cret' });
  const { logger, lines } = recordingLogger();
  const hooks = new Webhooks([{ url: moved.url, events: ['rollout.held'], secret: SECRET }], { gateway: { name: 'g', version: '1' }, logger, backoffMs: 5 });
  t.teardown(() => hooks.close());
  hooks.emit(alert());
  await hooks.idle();
  t.equal(moved.posts(), 1, 'not retried');
  t.match(lines.join('\n'), /"status":307,"error":"HTTP 307: a redirect, which is not followed \(Location: https:\/\/new\.example\.com\/hooks\?…\): give the webhook's url the receiver's new address","gaveUp":true/);
  t.notMatch(lines.join('\n'), /s3cret/, "the Location's query is not logged");
});

t.test('a Retry-After given as an HTTP date is honoured, within the longest backoff, as one in seconds is', async (t) => {
  const now = Date.UTC(2026, 11, 1, 12, 0, 0);
  const wait = async (retryAfter: string) => {
    const busy = await answering(t, 503, { 'retry-after': retryAfter });
    const { logger, lines } = recordingLogger();
    const hooks = new Webhooks([{ url: busy.url, events: ['rollout.held'], secret: SECRET }], { gateway: { name: 'g', version: '1' }, logger, now: () => now, backoffMs: 10, maxBackoffMs: 60_000, random: () => 0 });
    hooks.emit(alert());
    await until(() => lines.some((l) => l.includes('will retry')), 5000, 'the first failed attempt');
    await hooks.close();
    return JSON.parse(lines.find((l) => l.includes('will retry'))!.replace(/^warn [^{]*/, '')).retryInMs;
  };
  t.equal(await wait(new Date(now + 42_000).toUTCString()), 42_000, 'an HTTP date: until then');
  t.equal(await wait('42'), 42_000, 'seconds');
  t.equal(await wait(new Date(now + 3_600_000).toUTCString()), 60_000, 'a date beyond the longest backoff waits that long');
  t.equal(await wait(new Date(now - 5000).toUTCString()), 5, 'a date past: the backoff, halved as with any Retry-After');
  t.equal(await wait('soon'), 5, 'neither: the backoff');
});

t.test('emit returns before any I/O; a full queue drops its oldest waiting alert and counts it; close drops the rest', async (t) => {
  const pit = await tarpit(t);
  const hooks = new Webhooks([{ url: pit.url, events: ['rollout.held'], secret: SECRET }], { gateway: { name: 'g', version: '1' }, queueLimit: 2, timeoutMs: 60_000 });
  hooks.emit(alert());
  t.equal(pit.connections(), 0, 'nothing sent inside emit');
  await until(() => pit.connections() === 1, 5000, 'the first attempt');
  for (let i = 0; i < 4; i++) hooks.emit(alert());
  t.same(hooks.counters().queued, [2], 'the one in progress and the newest');
  t.equal(hooks.counters().deliveries.dropped, 3);
  await hooks.close();
  t.same(hooks.counters().deliveries, { delivered: 0, failed: 0, dropped: 5 });
  t.same(hooks.counters().queued, [0]);
  hooks.emit(alert());
  t.same(hooks.counters().queued, [0], 'nothing is queued after close');
});

t.test('an answer whose body never ends is delivered on its status: the body is not read, and the next alert goes at once', async (t) => {
  let posts = 0;
  const chunk = Buffer.alloc(64 * 1024, 0x78);
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      posts++;
      res.writeHead(200, { 'content-type': 'text/plain' });
      // Writes for as long as the gateway reads: without end, as a hostile or broken receiver might.
      const more = () => {
        while (!res.destroyed && res.write(chunk));
      };
      res.on('drain', more);
      more();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    server.closeAllConnections();
    return new Promise((resolve) => server.close(resolve));
  });
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/hooks`;
  const hooks = new Webhooks([{ url, events: ['rollout.held'], secret: SECRET }], { gateway: { name: 'g', version: '1' }, timeoutMs: 600_000 });
  t.teardown(() => hooks.close());
  hooks.emit(alert());
  hooks.emit(alert());
  await until(() => hooks.counters().deliveries.delivered === 2, 10_000, 'both deliveries');
  t.equal(posts, 2, 'each alert posted once');
  t.same(hooks.counters().attempts, { ok: 2, http_error: 0, network_error: 0, timeout: 0 }, 'a 200 is delivered whatever follows it');
});

t.test('a receiver on a port fetch never connects to (a Fetch standard "bad port") is given up at once, the log saying why', async (t) => {
  const { logger, lines } = recordingLogger();
  const hooks = new Webhooks([{ url: 'http://127.0.0.1:6000/hooks', events: ['rollout.held'], secret: SECRET }], { gateway: { name: 'g', version: '1' }, logger, backoffMs: 5 });
  t.teardown(() => hooks.close());
  hooks.emit(alert());
  await hooks.idle();
  t.same(hooks.counters().attempts, { ok: 0, http_error: 0, network_error: 1, timeout: 0 }, 'one attempt: no retry can reach that port');
  t.same(hooks.counters().deliveries, { delivered: 0, failed: 1, dropped: 0 });
  t.match(lines.join('\n'), /warn webhook delivery failed \{.*"error":"port 6000 is one fetch never connects to \(a \\"bad port\\" of the Fetch standard\): give the receiver another port","gaveUp":true\}/);
});
