// Gateway replicas (docs/architecture.md §8), against the real engines: two gateway processes on
// one Mosquitto and one PostgreSQL database of the test's own, and a 2,050-device simulated fleet
// with retained presence. One leads (holds the advisory lock, runs the engine); both take device
// messages through the shared subscription. Checked while both run: a hold comes within 1 s of the
// message that crossed the threshold, an action asked of the follower is performed by the leader,
// and two operators pausing one rollout on two replicas at once do not race (one pause, one 409).
// Then the leader is SIGKILLed mid-wave: the follower takes the lock within seconds, drains the
// dead replica's broker session, and the rollout completes with every device's ack recorded (no
// PUBACKed ack lost) and every decision of both leaders in order (none lost, none twice). A
// follower killed after that has its session drained by the leader too.
import t, { type Test } from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { Fleet } from '../../device-sim/fleet.ts';
import { generateKeyPair, type FirmwareManifest } from '../../firmware-manifest/index.ts';
import { hashDeviceToken, newToken } from '../../gateway/credentials.ts';
import { PostgresStore } from '../../gateway/store/postgres.ts';
import { newDeviceRecord } from '../../gateway/store/types.ts';
import type { Decision } from '../../gateway/rollout/types.ts';
import { newPins, pin, until } from '../fixtures/gateway.ts';
import { mosquitto, type TestMosquitto } from '../fixtures/mosquitto.ts';
import { transpileTree } from '../fixtures/transpile.ts';
import { withoutCoverage } from '../fixtures/child-env.ts';
import { testDatabase } from './store/fixtures/pg-database.ts';

const BUILD = mkdtempSync(join(tmpdir(), 'pinwave-replica-child-'));
t.teardown(() => rmSync(BUILD, { recursive: true, force: true }));
const CHILD = transpileTree(fileURLToPath(new URL('../fixtures/replica-child.ts', import.meta.url)), BUILD);
const FLEET = 2000;
const BAD = 50;
t.setTimeout(150_000);

interface Info {
  replica: { id: string; leader: boolean; terms: number; inboxIn: number; inboxHandled: number; forwarded: number; sessionsDrained: number; drainedMessages: number };
  connected: number;
  external: { messagesIn: number; acked: number };
  messagesIn: { ack: number; state: number; telemetry: number };
  inbox: number;
}

/** A replica in a child process; `call` runs a Gateway method there. */
async function replica(t: Test, dir: string, config: object, name: string) {
  const path = join(dir, `${name}.json`);
  writeFileSync(path, JSON.stringify(config), { mode: 0o600 });
  const child: ChildProcess = spawn(...withoutCoverage(process.execPath, [CHILD, path]), { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let n = 0;
  const waiting = new Map<number, (m: { ok: boolean; value?: unknown; error?: { code?: string; message: string } }) => void>();
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`replica ${name} did not start within 30 s:\n${output}`)), 30_000);
    child.on('message', (m: { started?: boolean; n?: number }) => {
      if (m.started) return clearTimeout(timer), resolve();
      waiting.get(m.n!)?.(m as never);
      waiting.delete(m.n!);
    });
    child.once('exit', (code) => (clearTimeout(timer), reject(new Error(`replica ${name} exited with ${code}:\n${output}`))));
  });
  const ask = <T>(cmd: string, args: unknown[] = []) =>
    new Promise<T>((resolve, reject) => {
      const id = ++n;
      waiting.set(id, (m) => (m.ok ? resolve(m.value as T) : reject(Object.assign(new Error(m.error!.message), { code: m.error!.code }))));
      child.send({ n: id, cmd, args });
    });
  return {
    child,
    output: () => output,
    info: () => ask<Info>('info'),
    call: <T>(method: string, ...args: unknown[]) => ask<T>('call', [method, ...args]),
    killed: () => new Promise<void>((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve()))),
  };
}

t.test('two replicas: a hold within 1 s while both run, actions through the leader, and a SIGKILLed leader taken over mid-wave with nothing lost', async (t) => {
  const began = Date.now();
  const dir = t.testdir();
  const key = generateKeyPair();
  const keyPath = join(dir, 'signing.key');
  writeFileSync(keyPath, key.privatePem, { mode: 0o600 });
  const good: FirmwareManifest = { model: 'th-100', firmware: '1.0.0', trustedKeys: [key.publicPem], pins: [{ host: 'api.example.com', pins: [pin('old'), pin('backup')] }] };
  const bad: FirmwareManifest = { ...good, model: 'lk-1' };
  const devices = [
    ...Array.from({ length: FLEET }, (_, i) => ({ id: `th-${String(i).padStart(4, '0')}`, token: newToken(), group: 'thermostats', model: 'th-100' })),
    ...Array.from({ length: BAD }, (_, i) => ({ id: `lk-${String(i).padStart(3, '0')}`, token: newToken(), group: 'locks', model: 'lk-1' })),
  ];
  const b: TestMosquitto = await mosquitto(t, { devices });
  const url = await testDatabase(t);
  // The fleet in the store (the broker's file holds the same tokens' hashes).
  const store = new PostgresStore({ url });
  await store.open();
  await store.apply(devices.map((d) => ({ type: 'device.provision' as const, device: newDeviceRecord({ id: d.id, group: d.group, model: d.model, firmware: '1.0.0', tokenHash: hashDeviceToken(d.token), createdAt: Date.now() }) })));
  await store.close();
  const config = (clientId: string) => ({ storeUrl: url, keyPath, manifests: [good, bad], broker: { url: b.url, username: b.gateway.username, password: b.gateway.password, clientId } });
  const a = await replica(t, dir, config('pinwave@replica-a'), 'a');
  await until(async () => (await a.info()).replica.leader, 10_000, 'replica a leading');
  const bb = await replica(t, dir, config('pinwave@replica-b'), 'b');
  t.match((await bb.info()).replica, { id: 'pinwave@replica-b', leader: false }, 'the second replica follows');

  // Devices ack after 0-2.5 s: a wave takes seconds, so the kill lands inside one.
  const rejectedAt: number[] = [];
  const fleet = new Fleet({
    url: b.url,
    models: [{ manifest: good, behaviours: { ackDelayMs: { min: 0, max: 2500 } } }, { manifest: bad, behaviours: { rejectRate: 1 } }],
    devices,
    seed: 'replicas',
    presence: 'retained',
    ramp: { perSecond: 1000 },
    callHomeSeconds: 0,
    onOutcome: (o) => void (o.status === 'rejected' && rejectedAt.push(Date.now())),
  });
  t.teardown(() => fleet.stop());
  await fleet.start();
  await until(async () => (await a.info()).connected === devices.length && (await bb.info()).connected === devices.length, 30_000, 'both replicas see the fleet online');

  // 1. A hold while both run: the locks reject; the fifth rejection crosses the threshold.
  const lockBundle = await a.call<{ id: string }>('createBundle', { group: 'locks', endpoints: newPins }, 'alice');
  const { rollout: locks } = await a.call<{ rollout: { id: string } }>('createRollout', { bundle: lockBundle.id, target: { group: 'locks' }, waves: [{ size: '100%', minDevices: 5 }], start: true }, 'alice');
  let held: { state: string; decisions: Decision[] } | undefined;
  await until(async () => (held = await a.call('getRollout', locks.id)).state === 'held', 10_000, 'the locks rollout held');
  const hold = held!.decisions.find((d) => d.action === 'hold')!;
  rejectedAt.sort((x, y) => x - y);
  t.ok(rejectedAt.length >= 5, `${rejectedAt.length} rejections`);
  const holdMs = hold.at - rejectedAt[4];
  t.ok(holdMs < 1000, `held ${holdMs} ms after the crossing rejection was PUBACKed to its device`);
  const split = [await a.info(), await bb.info()];
  t.ok(split[1].external.messagesIn > 0, `the follower took its share too (${split[0].external.messagesIn} + ${split[1].external.messagesIn} device messages)`);
  t.ok(split[0].replica.inboxHandled > 0, `the leader handled ${split[0].replica.inboxHandled} of the ${split[1].replica.inboxIn} messages the follower committed for it`);

  // 2. Actions on the follower go to the leader; two at once on two replicas do not race.
  const bundle = await bb.call<{ id: string }>('createBundle', { group: 'thermostats', endpoints: newPins }, 'alice');
  const { rollout } = await bb.call<{ rollout: { id: string; state: string } }>('createRollout', { bundle: bundle.id, target: { group: 'thermostats' }, waves: [{ size: '5%' }, { size: '50%' }, { size: '100%' }] }, 'alice');
  t.equal(rollout.state, 'pending', 'created through the follower');
  await bb.call('startRollout', rollout.id, 'alice');
  const pauses = await Promise.allSettled([a.call('pauseRollout', rollout.id, 'alice'), bb.call('pauseRollout', rollout.id, 'bob')]);
  const ok = pauses.filter((p) => p.status === 'fulfilled').length;
  t.equal(ok, 1, `one pause of two took: ${pauses.map((p) => (p.status === 'fulfilled' ? 'ok' : (p.reason as Error).message)).join(' | ')}`);
  t.match(pauses.find((p) => p.status === 'rejected'), { reason: { code: 'PW_INVALID_STATE' } }, 'the other is refused for the state the first left');
  await bb.call('resumeRollout', rollout.id, 'bob');
  t.equal((await bb.call<{ state: string }>('getRollout', rollout.id)).state, 'running', "the follower's view shows the leader's state");

  // 3. SIGKILL the leader inside the second wave.
  await until(async () => {
    const r = await a.call<{ wave: number; waves: Array<{ applied: number }> }>('getRollout', rollout.id);
    return r.wave === 1 && r.waves[1].applied >= 100;
  }, 30_000, 'the second wave under way');
  const mid = await a.call<{ waves: Array<{ applied: number; state: string }> }>('getRollout', rollout.id);
  a.child.kill('SIGKILL');
  const killedAt = Date.now();
  await a.killed();
  await until(async () => (await bb.info()).replica.leader, 10_000, 'replica b takes the lock');
  const tookOverMs = Date.now() - killedAt;
  t.ok(tookOverMs < 5000, `replica b led ${tookOverMs} ms after the kill (wave 2 had ${mid.waves[1].applied} applied)`);
  let done: { state: string; decisions: Decision[]; waves: Array<{ applied: number; state: string }> } | undefined;
  await until(async () => (done = await bb.call('getRollout', rollout.id)).state === 'completed', 60_000, 'the rollout completed by replica b');
  t.same(done!.waves.map((w) => w.state), ['passed', 'passed', 'passed']);

  // Nothing lost: every device's ack is in its history (a device sends its ack once, and reports no state in between).
  await until(() => fleet.summary().seqs['1'] === FLEET, 10_000, 'every thermostat runs the bundle');
  const db = new pg.Client({ connectionString: url });
  await db.connect();
  t.teardown(() => db.end());
  let acked = 0;
  await until(async () => {
    const { rows } = await db.query<{ n: string }>("SELECT count(DISTINCT device_id) AS n FROM device_history WHERE bundle_id = $1 AND event = 'applied'", [bundle.id]);
    acked = Number(rows[0].n);
    return acked === FLEET;
  }, 15_000, 'every ack recorded');
  t.equal(acked, FLEET, 'every thermostat ack recorded, those PUBACKed by the dead leader included');
  const { rows: waiting } = await db.query<{ n: string }>('SELECT count(*) AS n FROM replica_inbox');
  t.equal(Number(waiting[0].n), 0, 'the inbox drained');
  // Decisions: start, pause, resume, each wave's soak and pass, and the completion, each once, in order.
  const actions = done!.decisions.map((d) => d.action);
  t.same(actions, ['start', 'pause', 'resume', 'soak', 'pass', 'soak', 'pass', 'soak', 'pass', 'complete'], actions.join(', '));
  const { rows: sessions } = await db.query<{ id: string }>('SELECT id FROM replicas ORDER BY id');
  t.same(sessions.map((r) => r.id), ['pinwave@replica-b'], "the dead replica's broker session was drained and it was forgotten");
  const took = (await bb.info()).replica;
  t.equal(took.sessionsDrained, 1, `one dead session drained, holding ${took.drainedMessages} device messages`);
  t.ok(took.forwarded >= 4 && took.inboxIn > 0, `replica b forwarded ${took.forwarded} actions and committed ${took.inboxIn} device messages for the leader while it followed`);
  // A follower that dies: the leader drains its session within its next rounds, and forgets it.
  const c = await replica(t, dir, config('pinwave@replica-c'), 'c');
  t.match((await c.info()).replica, { id: 'pinwave@replica-c', leader: false });
  c.child.kill('SIGKILL');
  await c.killed();
  await until(async () => (await bb.info()).replica.sessionsDrained === 2, 10_000, "the dead follower's session drained");
  const { rows: left } = await db.query<{ id: string }>('SELECT id FROM replicas ORDER BY id');
  t.same(left.map((r) => r.id), ['pinwave@replica-b'], 'and it was forgotten');
  t.comment(`hold ${holdMs} ms after the crossing message; takeover ${tookOverMs} ms after SIGKILL; ${took.drainedMessages} messages drained from the dead session; whole test ${Date.now() - began} ms`);
});
