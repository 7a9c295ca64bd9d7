// GET /v1/rollouts/:id/events over a real HTTP connection: a snapshot, then changes in order with
// increasing ids; a reconnect with Last-Event-ID replays what was missed; the role it needs; streams
// that close with their token, their session, the server; heartbeats; a stream holds no shutdown.
import t from 'tap';
import { apiHarness, API_TOKENS, TOKENS, type ApiHarness } from '../../fixtures/http.ts';
import { fleet, pin, until } from '../../fixtures/gateway.ts';
import { openStream } from '../../fixtures/sse.ts';
import type { ServerOptions } from '../../../gateway/http/server.ts';

async function served(t: Parameters<typeof apiHarness>[0], over: Partial<ServerOptions> = {}) {
  const a = await apiHarness(t, over);
  await a.app.listen({ host: '127.0.0.1', port: 0 });
  const address = a.app.server.address();
  return Object.assign(a, { base: `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}` });
}

async function pendingRollout(a: ApiHarness, n = 3) {
  const sims = await fleet(a, n);
  const b = (await a.call('POST', '/v1/bundles', { body: { group: 'thermostats', pins: [{ host: 'api.example.com', pins: [pin('new'), pin('backup')] }] } })).json();
  const ro = (await a.call('POST', '/v1/rollouts', { body: { bundle: b.id, target: { group: 'thermostats' }, waves: [{ size: '100%', minDevices: 1 }] } })).json();
  return { sims, ro };
}

const bearer = (role: keyof typeof TOKENS) => ({ authorization: `Bearer ${TOKENS[role]}` });

t.test('a stream sends a snapshot, then a change each time the rollout changes, in order, each the rollout as GET shows it', async (t) => {
  const a = await served(t);
  const { sims, ro } = await pendingRollout(a);
  const s = await openStream(`${a.base}/v1/rollouts/${ro.id}/events`, bearer('viewer'));
  t.teardown(() => s.close());
  t.equal(s.status, 200);
  t.match(s.headers['content-type'], /^text\/event-stream/);
  t.equal(s.headers['cache-control'], 'no-cache, no-transform');
  const [snap] = await s.waitFor(1);
  t.equal(snap.event, 'snapshot');
  t.same(JSON.parse(snap.data), (await a.call('GET', `/v1/rollouts/${ro.id}`)).json(), 'the snapshot is the rollout as GET shows it');

  t.equal((await a.call('POST', `/v1/rollouts/${ro.id}/start`, { as: 'operator' })).statusCode, 200);
  const started = (await s.waitFor(2))[1];
  t.equal(started.event, 'change');
  t.match(JSON.parse(started.data), { state: 'running', decisions: [{ action: 'start', actor: 'olga' }] });

  t.teardown(() => Promise.all(sims.map((d) => d.disconnect())));
  await Promise.all(sims.map((d) => d.connect()));
  await until(() => s.events.length > 0 && JSON.parse(s.events.at(-1)!.data).waves[0].applied === 3, 5000, 'the acks, as events');
  const ids = s.events.map((e) => Number(e.id));
  t.ok(ids.every((id, i) => i === 0 || id > ids[i - 1]), `ids only go up: ${ids.join(', ')}`);
  const applied = s.events.map((e) => JSON.parse(e.data).waves[0].applied as number);
  t.ok(applied.every((n, i) => i === 0 || n >= applied[i - 1]), `progress in order: ${applied.join(', ')}`);
  t.ok(s.events.every((e, i) => i === 0 || e.data !== s.events[i - 1].data), 'no event repeats the one before');
  await until(async () => JSON.parse(s.events.at(-1)!.data).waves[0].applied === (await a.call('GET', `/v1/rollouts/${ro.id}`)).json().waves[0].applied, 5000, 'the last event is the rollout now');
  t.same(JSON.parse(s.events.at(-1)!.data), (await a.call('GET', `/v1/rollouts/${ro.id}`)).json());
});

t.test('a client reconnecting with Last-Event-ID gets the events it missed, in order; an id too old or not ours gets a snapshot', async (t) => {
  const a = await served(t);
  const { ro } = await pendingRollout(a);
  const url = `${a.base}/v1/rollouts/${ro.id}/events`;
  const watcher = await openStream(url, bearer('viewer'));
  t.teardown(() => watcher.close());
  await watcher.waitFor(1);
  const leaver = await openStream(url, bearer('viewer'));
  const [seen] = await leaver.waitFor(1);
  leaver.close();
  await leaver.ended;

  let n = watcher.events.length;
  for (const action of ['start', 'pause', 'resume']) {
    t.equal((await a.call('POST', `/v1/rollouts/${ro.id}/${action}`, { as: 'operator' })).statusCode, 200, action);
    await watcher.waitFor(++n);
  }
  const missed = watcher.events.filter((e) => Number(e.id) > Number(seen.id));
  t.same(missed.map((e) => JSON.parse(e.data).state), ['running', 'held', 'running']);

  const back = await openStream(url, { ...bearer('viewer'), 'last-event-id': seen.id! });
  t.teardown(() => back.close());
  await back.waitFor(missed.length);
  t.same(back.events, missed, 'exactly what it missed: same ids, same data, no snapshot');

  const upToDate = await openStream(url, { ...bearer('viewer'), 'last-event-id': watcher.events.at(-1)!.id! });
  t.teardown(() => upToDate.close());
  t.equal((await a.call('POST', `/v1/rollouts/${ro.id}/pause`, { as: 'operator' })).statusCode, 200);
  const [next] = await upToDate.waitFor(1);
  t.match({ event: next.event, state: JSON.parse(next.data).state }, { event: 'change', state: 'held' }, 'nothing missed: the next change is the first event');

  for (const last of ['1', 'x', '']) {
    const fresh = await openStream(url, { ...bearer('viewer'), 'last-event-id': last });
    const [e] = await fresh.waitFor(1);
    fresh.close();
    t.equal(e.event, 'snapshot', `Last-Event-ID ${JSON.stringify(last)}: a snapshot`);
    t.ok(Number(e.id) > Number(watcher.events.at(-1)!.id), 'with an id above every one before');
  }
});

t.test('a stream needs a viewer: 401 with no token, 403 never (viewers may watch), 404 for no such rollout; HEAD answers the headers', async (t) => {
  const a = await served(t);
  const { ro } = await pendingRollout(a, 1);
  const none = await a.app.inject({ method: 'GET', url: `/v1/rollouts/${ro.id}/events` });
  t.equal(none.statusCode, 401);
  t.equal(none.json().code, 'PW_UNAUTHORIZED');
  t.equal((await a.app.inject({ method: 'GET', url: `/v1/rollouts/${ro.id}/events`, headers: { authorization: 'Bearer wrong-token-0123456789abcdef' } })).statusCode, 401);
  const missing = await a.app.inject({ method: 'GET', url: '/v1/rollouts/r-nope/events', headers: bearer('viewer') });
  t.equal(missing.statusCode, 404);
  t.equal(missing.json().message, 'no rollout "r-nope"');
  const head = await a.app.inject({ method: 'HEAD', url: `/v1/rollouts/${ro.id}/events`, headers: bearer('viewer') });
  t.equal(head.statusCode, 200);
  t.match(head.headers['content-type'], /^text\/event-stream/);
  t.equal(a.app.rolloutStreams.open, 0, 'HEAD opens no stream');
});

t.test("a stream closes when its token is revoked, and a console session's stream when the session is signed out", async (t) => {
  const a = await served(t);
  const { ro } = await pendingRollout(a, 1);
  const url = `${a.base}/v1/rollouts/${ro.id}/events`;
  const olga = await openStream(url, bearer('operator'));
  const vera = await openStream(url, bearer('viewer'));
  t.teardown(() => vera.close());
  await olga.waitFor(1);
  await vera.waitFor(1);
  t.equal(a.app.rolloutStreams.open, 2);
  t.match((await a.call('GET', '/metrics', { as: null })).body, /\npinwave_rollout_event_streams 2\n/, 'the open streams are a metric');
  a.app.apiTokens.replace(API_TOKENS.filter((x) => x.name !== 'olga'));
  await olga.ended;
  t.notOk(vera.isEnded(), "another token's stream stays open");

  const signIn = await fetch(`${a.base}/ui/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: TOKENS.admin }) });
  const cookie = signIn.headers.get('set-cookie')!.split(';')[0];
  const { csrf } = (await signIn.json()) as { csrf: string };
  const session = await openStream(url, { cookie });
  await session.waitFor(1);
  t.equal((await fetch(`${a.base}/ui/session`, { method: 'DELETE', headers: { cookie, 'x-pinwave-csrf': csrf } })).status, 204);
  await session.ended;
  t.notOk(vera.isEnded());
  t.equal(a.app.rolloutStreams.open, 1);
});

t.test('a heartbeat comment keeps a quiet stream open; an idle session ends its stream at the next heartbeat', async (t) => {
  const a = await served(t, { console: { heartbeatMs: 40, sessionIdleMs: 60_000 } });
  const { ro } = await pendingRollout(a, 1);
  const url = `${a.base}/v1/rollouts/${ro.id}/events`;
  const s = await openStream(url, bearer('viewer'));
  t.teardown(() => s.close());
  await until(() => s.comments.filter((c) => c === 'heartbeat').length >= 2, 5000, 'two heartbeats');

  const signIn = await a.app.inject({ method: 'POST', url: '/ui/session', headers: { 'content-type': 'application/json' }, payload: { token: TOKENS.viewer } });
  const cookie = String(signIn.headers['set-cookie']).split(';')[0];
  const watched = await openStream(url, { cookie });
  await watched.waitFor(1);
  a.clock.advance(61_000);
  await watched.ended;
  t.notOk(s.isEnded(), 'a token has no idle timeout');
});

t.test('streams do not hold a shutdown: they are not work in flight, and closing the server ends them at once', async (t) => {
  const a = await served(t);
  const { ro } = await pendingRollout(a, 1);
  const s = await openStream(`${a.base}/v1/rollouts/${ro.id}/events`, bearer('viewer'));
  await s.waitFor(1);
  t.equal(a.app.connections.working, 0, 'an open stream is no request in flight');
  const started = Date.now();
  await a.app.close();
  await s.ended;
  t.ok(Date.now() - started < 5000, 'closed without waiting on the stream');
  t.equal(a.app.rolloutStreams.open, 0);
});
