// Provisional apply with a health-checked commit, as a pure machine on an injected clock: every
// transition (open, commit, revert on a mismatch, retry on unreachable, onUnverifiable both ways, a
// reboot mid-window, a newer bundle during the window), and the acks it makes encode and decode.
import t from 'tap';
import { createHash } from 'node:crypto';
import * as ed from '@noble/ed25519';
import { signBundle, verifyBundle, type BundleInput } from '../../firmware-manifest/codec.ts';
import { decodeAnyAck, decodeAnyState, encodeAck, encodeState } from '../../firmware-manifest/messages.ts';
import {
  ackDelivered,
  enforcedEndpoints,
  observeHandshakes,
  provisionalStatus,
  receiveBundle,
  resumeWindow,
  tickWindow,
  trustOf,
  type DeviceTrust,
  type HealthCheck,
  type Observation,
  type Step,
} from '../../firmware-manifest/provisional.ts';
import { applyVerified, checkChain, emptyState, trustedKeyBytes, type TrustState } from '../../firmware-manifest/trust-state.ts';

const sha = (s: string) => new Uint8Array(createHash('sha256').update(s).digest());
const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');
const seed = sha('key A');
const NOW = 1767225600;
const DAY = 86400;
const [oldKey, backup, newKey, stranger, telemetryKey] = ['old server key', 'backup key', 'new server key', 'a key nobody pins', 'telemetry key'].map(sha);

/** Committed: seq 3 pinning the old key of api.example.com. */
const committed: TrustState = {
  ...emptyState('thermostats', [ed.getPublicKey(seed)]),
  seq: 3,
  bundleId: 'ab'.repeat(32),
  endpoints: [{ host: 'api.example.com', port: 443, pins: [b64(oldKey), b64(backup)], mode: 'enforce' }],
  exp: NOW + 30 * DAY,
};
const hc: HealthCheck = { commitTimeoutSeconds: 60, retrySeconds: 10, onUnverifiable: 'commit' };

function bundle(over: Partial<BundleInput> = {}) {
  return signBundle({ seq: 4, iat: NOW - 60, exp: NOW + 30 * DAY, group: 'thermostats', endpoints: [{ host: 'api.example.com', port: 443, pins: [newKey, backup] }], ...over }, seed);
}
const verified = (bytes: Uint8Array, s: TrustState = committed) => verifyBundle(bytes, trustedKeyBytes(s), { maxBytes: s.maxBundleBytes, acceptedVersions: s.acceptedVersions });
const seen = (host: string, port: number, at: number, served: Uint8Array[] | 'unreachable'): Observation => ({ host, port, at, served: served === 'unreachable' ? served : served.map(b64) });

/** Deep-frozen, so a transition that writes into its input throws. */
function frozen<T>(v: T): T {
  if (v && typeof v === 'object') {
    for (const k of Object.keys(v)) frozen((v as Record<string, unknown>)[k]);
    Object.freeze(v);
  }
  return v;
}

/** A window opened on a bundle, at NOW. */
function opened(over: Partial<BundleInput> = {}, check: HealthCheck = hc): { b: ReturnType<typeof bundle>; step: Step } {
  const b = bundle(over);
  return { b, step: receiveBundle(frozen(trustOf(committed)), verified(b.bytes), NOW, check) };
}

t.test('without a health check a bundle is committed at once and acked applied, as apply() does', async (t) => {
  const b = bundle();
  const step = receiveBundle(frozen(trustOf(committed)), verified(b.bytes), NOW, null);
  const r = applyVerified(committed, verified(b.bytes), NOW);
  if (!r.ok) return t.fail(r.detail);
  t.same(step.trust, { active: r.state, window: null, outcome: null });
  t.equal(step.persist, true, 'persisted before the ack');
  t.same(step.ack, { seq: 4, bundleId: b.id, status: 'applied' });
  t.same(step.run, []);
  t.equal(step.wakeAt, null);
  const again = receiveBundle(step.trust, verified(b.bytes), NOW + 5, null);
  t.same(again.ack, { seq: 4, bundleId: b.id, status: 'applied' }, 'a redelivery is acked again');
  t.equal(again.persist, false);
  t.equal(again.redelivered, true);
});

t.test('with a health check a valid bundle is applied provisionally: new state active, previous kept, checks asked', async (t) => {
  const { b, step } = opened({
    endpoints: [
      { host: 'api.example.com', port: 443, pins: [newKey, backup], notAfter: NOW + 7 * DAY },
      { host: 'api.example.com', port: 443, pins: [stranger, backup], notBefore: NOW + 6 * DAY },
      { host: 'telemetry.example.com', port: 8883, pins: [telemetryKey, backup], mode: 'report-only' },
      { host: '*.iot.example.com', port: 443, pins: [newKey, backup] },
    ],
  });
  t.equal(step.persist, true, 'the provisional state is persisted before anything else');
  t.equal(step.ack, null, 'no ack until the window closes');
  t.equal(step.opened, true);
  t.equal(step.trust.active.seq, 4, 'the new trust state is active');
  t.equal(step.trust.active.bundleId, b.id);
  t.same(step.trust.window?.previous, committed, 'the previous one is kept whole beside it');
  t.same(step.run, [{ host: 'api.example.com', port: 443 }], 'each enforced endpoint once; report-only sets and wildcards are not dialled');
  t.same(step.trust.window?.checks.map((c) => [c.host, c.dialable]), [['api.example.com', true], ['*.iot.example.com', false]]);
  t.equal(step.trust.window?.deadline, NOW + 60);
  t.equal(step.wakeAt, NOW + 10, 'wakes when the handshake asked runs out');
  t.same(provisionalStatus(step.trust), { previousSeq: 3, previousBundleId: committed.bundleId, openedAt: NOW, deadline: NOW + 60, pending: [{ host: 'api.example.com', port: 443 }, { host: '*.iot.example.com', port: 443 }] });
  t.same(JSON.parse(JSON.stringify(step.trust)), step.trust, 'the persisted form is plain JSON');
});

t.test('every check passing commits: ack verified listing the endpoints checked', async (t) => {
  const b = bundle({ endpoints: [{ host: 'api.example.com', port: 443, pins: [newKey, backup] }, { host: 'ota.example.com', port: 8443, pins: [newKey, backup] }] });
  const open = receiveBundle(trustOf(committed), verified(b.bytes), NOW, hc);
  t.same(open.run, [{ host: 'api.example.com', port: 443 }, { host: 'ota.example.com', port: 8443 }]);
  const half = observeHandshakes(frozen(open.trust), [seen('api.example.com', 443, NOW, [newKey, stranger])], NOW + 1);
  t.equal(half.ack, null, 'one of two: still open');
  t.same(half.run, [], 'the other is in flight: not asked twice');
  t.equal(half.trust.window?.checks[0].passed, true);
  const done = observeHandshakes(frozen(half.trust), [seen('OTA.example.com', 8443, NOW, [stranger, newKey])], NOW + 2);
  t.same(done.ack, { seq: 4, bundleId: b.id, status: 'verified', checked: [{ host: 'api.example.com', port: 443 }, { host: 'ota.example.com', port: 8443 }] }, 'any key of the chain may match (RFC 7469 §2.6)');
  t.equal(done.persist, true);
  t.equal(done.trust.window, null);
  t.equal(done.trust.active.bundleId, b.id, 'committed');
  t.same(done.trust.outcome, { ack: done.ack, delivered: false });
  t.equal(done.wakeAt, null);
  t.same(ackDelivered(done.trust, done.ack!).outcome, { ack: done.ack, delivered: true });
  t.same(decodeAnyAck(encodeAck(done.ack!)), { ok: true, message: done.ack }, 'the ack encodes and decodes');
  t.equal(provisionalStatus(done.trust), undefined);
});

t.test('new pins that miss the served key revert by themselves, to the previous state, naming the endpoint and served pins', async (t) => {
  const b = bundle({ endpoints: [{ host: 'api.example.com', port: 443, pins: [newKey, backup] }, { host: 'ota.example.com', port: 8443, pins: [newKey, backup] }] });
  const open = receiveBundle(trustOf(committed), verified(b.bytes), NOW, hc);
  const step = observeHandshakes(frozen(open.trust), [seen('api.example.com', 443, NOW, [oldKey, stranger])], NOW + 1);
  t.same(
    step.ack,
    { seq: 4, bundleId: b.id, status: 'reverted', reason: 'pin_mismatch', endpoint: { host: 'api.example.com', port: 443 }, servedPins: [b64(oldKey), b64(stranger)], previousSeq: 3, previousBundleId: committed.bundleId },
    'at once, not waiting for the other endpoint',
  );
  t.equal(step.persist, true, 'the revert is persisted before its ack');
  t.same(step.trust.active, committed, 'back on the previous trust state, whole');
  t.equal(step.trust.window, null);
  t.equal(checkChain(step.trust.active, 'api.example.com', 443, [oldKey], NOW + 1), 'ok', 'and its pins reach the endpoint again');
  t.same(decodeAnyAck(encodeAck(step.ack!)), { ok: true, message: step.ack });
  // The same bundle again (a gateway that resends it): the same answer, no second window.
  const again = receiveBundle(step.trust, verified(b.bytes), NOW + 30, hc);
  t.same(again.ack, step.ack);
  t.equal(again.redelivered, true);
  t.equal(again.trust.window, null);
  t.equal(again.persist, false);
});

t.test('report-only sets, expired-fallback and hosts the bundle does not pin are not lockouts: they pass', async (t) => {
  const list: HealthCheck = { ...hc, endpoints: [{ host: 'telemetry.example.com', port: 8883 }, { host: 'status.example.com', port: 443 }] };
  const { b, step } = opened({ endpoints: [{ host: 'api.example.com', port: 443, pins: [newKey, backup] }, { host: 'telemetry.example.com', port: 8883, pins: [telemetryKey, backup], mode: 'report-only' }] }, list);
  t.same(step.run, list.endpoints, "the manifest's list, not the bundle's endpoints");
  const done = observeHandshakes(step.trust, [seen('telemetry.example.com', 8883, NOW, [stranger]), seen('status.example.com', 443, NOW, [stranger])], NOW + 1);
  t.same(done.ack, { seq: 4, bundleId: b.id, status: 'verified', checked: list.endpoints });
  const fallback = opened({ iat: NOW - 100, exp: NOW + 100, expiryPolicy: 'ca-fallback' });
  const late = observeHandshakes(fallback.step.trust, [seen('api.example.com', 443, NOW + 5, [stranger])], NOW + 100);
  t.equal(late.ack?.status, 'verified', 'an expired bundle under ca-fallback enforces nothing');
});

t.test('an endpoint that does not answer is retried every retrySeconds', async (t) => {
  const { step } = opened();
  const down = observeHandshakes(frozen(step.trust), [{ ...seen('api.example.com', 443, NOW, 'unreachable'), error: '127.0.0.1:1: ECONNREFUSED' }], NOW + 1);
  t.equal(down.ack, null);
  t.same(down.run, [], 'not at once');
  t.equal(down.wakeAt, NOW + 11, 'retrySeconds after the failure');
  t.equal(down.trust.window?.checks[0].lastError, '127.0.0.1:1: ECONNREFUSED');
  t.same(tickWindow(down.trust, NOW + 5).run, [], 'nothing due yet');
  const retry = tickWindow(frozen(down.trust), NOW + 11);
  t.same(retry.run, [{ host: 'api.example.com', port: 443 }], 'due again');
  t.equal(retry.trust.window?.checks[0].attempts, 2);
  // A handshake that never answers runs out after retrySeconds, and is asked again.
  const silent = tickWindow(retry.trust, NOW + 21);
  t.same(silent.run, [{ host: 'api.example.com', port: 443 }]);
  t.equal(silent.trust.window?.checks[0].attempts, 3);
  t.match(silent.trust.window?.checks[0].lastError, /ECONNREFUSED/);
  const up = observeHandshakes(silent.trust, [seen('api.example.com', 443, NOW + 21, [newKey])], NOW + 22);
  t.equal(up.ack?.status, 'verified', 'and an answer within the window decides');
});

t.test('onUnverifiable "commit": endpoints silent until the deadline leave the bundle applied, unverified', async (t) => {
  const { b, step } = opened();
  let s = step;
  let now = NOW;
  const asked: number[] = [];
  for (let i = 0; i < 20 && s.ack === null; i++) {
    if (s.run.length > 0) asked.push(now - NOW);
    const results = s.run.map((e) => ({ ...seen(e.host, e.port, now, 'unreachable'), error: 'ETIMEDOUT' }));
    s = results.length > 0 ? observeHandshakes(s.trust, results, now) : s;
    if (s.ack === null && s.wakeAt !== null) {
      now = s.wakeAt;
      s = tickWindow(s.trust, now);
    }
  }
  t.same(asked, [0, 10, 20, 30, 40, 50], 'tried every retrySeconds inside the 60 s window');
  t.equal(now, NOW + 60, 'decided at the deadline');
  t.same(s.ack, { seq: 4, bundleId: b.id, status: 'applied', unverified: [{ host: 'api.example.com', port: 443 }], detail: 'api.example.com:443 did not answer in 6 attempts (ETIMEDOUT)' });
  t.equal(s.trust.active.bundleId, b.id, 'committed');
  t.equal(s.trust.window, null);
  t.equal(s.persist, true);
  t.same(decodeAnyAck(encodeAck(s.ack!)), { ok: true, message: s.ack });
});

t.test('onUnverifiable "revert": endpoints silent until the deadline revert the bundle', async (t) => {
  const { b, step } = opened({}, { ...hc, onUnverifiable: 'revert' });
  const down = observeHandshakes(step.trust, [seen('api.example.com', 443, NOW, 'unreachable')], NOW + 55);
  t.equal(down.wakeAt, NOW + 60, 'the retry would fall past the deadline: it wakes at the deadline');
  const end = tickWindow(down.trust, NOW + 60);
  t.same(end.ack, { seq: 4, bundleId: b.id, status: 'reverted', reason: 'unverifiable', endpoint: { host: 'api.example.com', port: 443 }, servedPins: [], previousSeq: 3, previousBundleId: committed.bundleId, detail: 'api.example.com:443 did not answer in 1 attempt (no TLS handshake)' });
  t.same(end.trust.active, committed);
  t.same(decodeAnyAck(encodeAck(end.ack!)), { ok: true, message: end.ack });
});

t.test('a handshake still in flight at the deadline is waited for, up to retrySeconds', async (t) => {
  const { step } = opened();
  const down = observeHandshakes(step.trust, [seen('api.example.com', 443, NOW, 'unreachable')], NOW + 45);
  const last = tickWindow(down.trust, NOW + 55);
  t.same(last.run, [{ host: 'api.example.com', port: 443 }], 'the last retry inside the window');
  const atDeadline = tickWindow(last.trust, NOW + 60);
  t.equal(atDeadline.ack, null, 'not decided while its handshake may still answer');
  t.equal(atDeadline.wakeAt, NOW + 65);
  const mismatch = observeHandshakes(atDeadline.trust, [seen('api.example.com', 443, NOW + 55, [stranger])], NOW + 62);
  t.equal(mismatch.ack?.status, 'reverted', 'its answer still counts: evidence wins over the timeout');
  t.equal(tickWindow(atDeadline.trust, NOW + 65).ack?.status, 'applied', 'and without one, onUnverifiable decides when it runs out');
});

t.test('a reboot mid-window resumes from the persisted state alone', async (t) => {
  const { b, step } = opened({ endpoints: [{ host: 'api.example.com', port: 443, pins: [newKey, backup] }, { host: 'ota.example.com', port: 8443, pins: [newKey, backup] }] });
  const half = observeHandshakes(step.trust, [seen('api.example.com', 443, NOW, [newKey])], NOW + 1);
  // Power is cut: what survives is what was persisted, as JSON; the handshake to ota.example.com died with it.
  const flash: DeviceTrust = JSON.parse(JSON.stringify(half.trust));
  const booted = resumeWindow(frozen(flash), NOW + 20);
  t.same(booted.run, [{ host: 'ota.example.com', port: 8443 }], 'what was not passed is asked again at once');
  t.equal(booted.persist, false, 'nothing need be written to resume');
  t.equal(booted.trust.window?.deadline, NOW + 60, 'the deadline stands');
  const done = observeHandshakes(booted.trust, [seen('ota.example.com', 8443, NOW + 20, [newKey])], NOW + 21);
  t.same(done.ack, { seq: 4, bundleId: b.id, status: 'verified', checked: [{ host: 'api.example.com', port: 443 }, { host: 'ota.example.com', port: 8443 }] });
  // Progress not persisted is simply done again: a device that lost `half` resumes from `step`.
  const lost = resumeWindow(JSON.parse(JSON.stringify(step.trust)), NOW + 20);
  t.same(lost.run, [{ host: 'api.example.com', port: 443 }, { host: 'ota.example.com', port: 8443 }]);
  // Dark past the deadline: one more round before onUnverifiable decides.
  const late = resumeWindow(flash, NOW + 600);
  t.same(late.run, [{ host: 'ota.example.com', port: 8443 }]);
  t.equal(late.trust.window?.deadline, NOW + 610);
  t.equal(late.ack, null);
  const gone = observeHandshakes(late.trust, [seen('ota.example.com', 8443, NOW + 600, 'unreachable')], NOW + 601);
  t.equal(gone.ack, null);
  t.equal(tickWindow(gone.trust, NOW + 610).ack?.status, 'applied');
});

t.test('a newer bundle during a window supersedes it; a revert still goes back to the last committed state', async (t) => {
  const { b: first, step } = opened();
  const second = bundle({ seq: 5, endpoints: [{ host: 'api.example.com', port: 443, pins: [stranger, backup] }] });
  const next = receiveBundle(frozen(step.trust), verified(second.bytes, step.trust.active), NOW + 3, hc);
  t.equal(next.ack, null, 'the superseded bundle gets no ack of its own');
  t.equal(next.superseded, first.id);
  t.equal(next.opened, true);
  t.equal(next.persist, true);
  t.equal(next.trust.active.seq, 5, 'the window is judged for the newest bundle');
  t.same(next.trust.window?.previous, committed, 'and keeps the last committed state, never the unverified one');
  t.equal(next.trust.window?.openedAt, NOW + 3);
  t.equal(next.trust.window?.deadline, NOW + 63);
  const stale = observeHandshakes(next.trust, [seen('api.example.com', 443, NOW, [newKey])], NOW + 4);
  t.equal(stale.ack, null, "a handshake asked for the older window does not speak for this one");
  const out = observeHandshakes(next.trust, [seen('api.example.com', 443, NOW + 3, [oldKey])], NOW + 4);
  t.match(out.ack, { status: 'reverted', seq: 5, bundleId: second.id, previousSeq: 3, previousBundleId: committed.bundleId });
  t.same(out.trust.active, committed);
  // What cannot supersede: a bad bundle is rejected and the window carries on; the provisional one again changes nothing.
  const forged = bundle({ seq: 6, group: 'boilers' });
  const rejected = receiveBundle(step.trust, verified(forged.bytes), NOW + 3, hc);
  t.match(rejected.ack, { status: 'rejected', reason: 'wrong_group', seq: 6, bundleId: forged.id });
  t.same(rejected.trust, step.trust);
  t.equal(rejected.persist, false);
  const again = receiveBundle(step.trust, verified(first.bytes), NOW + 3, hc);
  t.equal(again.ack, null, 'the provisional bundle again: its answer comes when the window closes');
  t.equal(again.redelivered, true);
  t.same(again.trust, step.trust);
  t.match(receiveBundle(step.trust, verified(bundle({ seq: 3 }).bytes), NOW + 3, hc).ack, { status: 'rejected', reason: 'replayed' }, 'seq is checked against the provisional bundle');
});

t.test('a committed bundle delivered again gets the ack its window closed with', async (t) => {
  const { b, step } = opened();
  const done = observeHandshakes(step.trust, [seen('api.example.com', 443, NOW, [newKey])], NOW + 1);
  const again = receiveBundle(done.trust, verified(b.bytes, done.trust.active), NOW + 100, hc);
  t.same(again.ack, done.ack);
  t.equal(again.ack?.status, 'verified');
  t.equal(again.persist, false);
});

t.test('nothing to check, or nothing that can be dialled, is decided at once', async (t) => {
  const none = opened({ endpoints: [{ host: 'telemetry.example.com', port: 8883, pins: [newKey, backup], mode: 'report-only' }] });
  t.same(none.step.ack, { seq: 4, bundleId: none.b.id, status: 'verified', checked: [] }, 'a bundle that enforces nothing cannot lock the device out');
  t.equal(none.step.trust.window, null);
  t.equal(none.step.persist, true);
  const wild = opened({ endpoints: [{ host: '*.iot.example.com', port: 443, pins: [newKey, backup] }] }, { ...hc, onUnverifiable: 'revert' });
  t.match(wild.step.ack, { status: 'reverted', reason: 'unverifiable', endpoint: { host: '*.iot.example.com', port: 443 }, detail: /wildcard/ }, "a wildcard set with no host in the manifest's list cannot be checked");
  t.same(wild.step.trust.active, committed);
});

t.test('enforcedEndpoints lists each enforced host and port once, in bundle order', async (t) => {
  const s: TrustState = {
    ...committed,
    endpoints: [
      { host: 'b.example.com', port: 443, pins: [], mode: 'enforce' },
      { host: 'a.example.com', port: 443, pins: [], mode: 'report-only' },
      { host: 'b.example.com', port: 443, pins: [], mode: 'enforce', notBefore: 5 },
      { host: 'b.example.com', port: 8443, pins: [], mode: 'enforce' },
    ],
  };
  t.same(enforcedEndpoints(s), [{ host: 'b.example.com', port: 443 }, { host: 'b.example.com', port: 8443 }]);
});

t.test("a device's state during a window carries the window, encoded and decoded", async (t) => {
  const { b, step } = opened();
  const provisional = provisionalStatus(step.trust)!;
  const state = { seq: 4, bundleId: b.id, firmware: '2.0.0', model: 'th-100', keyEpoch: 0, time: NOW, provisional };
  t.same(decodeAnyState(encodeState(state)), { ok: true, message: state });
});

t.test('a device clock set back past the window opening (a reboot on a reset RTC) still reverts on the evidence of its own handshakes', async (t) => {
  const { b, step } = opened({ endpoints: [{ host: 'api.example.com', port: 443, pins: [stranger, backup] }] });
  // Power cut; the device comes back with its clock 1000 s behind the window's openedAt.
  const back = NOW - 1000;
  const booted = resumeWindow(JSON.parse(JSON.stringify(step.trust)), back);
  t.same(booted.run, [{ host: 'api.example.com', port: 443 }], 'asked again at once');
  const out = observeHandshakes(booted.trust, [seen('api.example.com', 443, back, [oldKey])], back + 1);
  t.match(out.ack, { status: 'reverted', reason: 'pin_mismatch', bundleId: b.id, previousSeq: 3 }, "the answer to the window's own handshake is evidence, whatever the clock says");
  t.same(out.trust.active, committed);
  // A passing answer commits the same way; a handshake asked before the ask in flight still does not count.
  const ok = observeHandshakes(booted.trust, [seen('api.example.com', 443, back, [stranger])], back + 1);
  t.equal(ok.ack?.status, 'verified');
  const older = observeHandshakes(booted.trust, [seen('api.example.com', 443, back - 1, [oldKey])], back + 1);
  t.equal(older.ack, null, 'asked before the window opened and before its own ask: no evidence');
});

t.test('a handshake that served no certificate is no evidence: not a revert with no served pins', async (t) => {
  const { step } = opened();
  const empty = observeHandshakes(step.trust, [seen('api.example.com', 443, NOW, [])], NOW + 1);
  t.equal(empty.ack, null, 'no revert the gateway could not read (decodeAnyAck wants the served pins of a pin_mismatch)');
  t.match(empty.trust.window?.checks[0], { passed: false, askedAt: null, dueAt: NOW + 11, lastError: /no certificate/ }, 'retried as a handshake that did not complete');
  const end = tickWindow(empty.trust, NOW + 60);
  t.equal(end.ack?.status, 'applied', 'and decided by onUnverifiable at the deadline');
  t.ok(decodeAnyAck(encodeAck(end.ack!)).ok);
});

t.test('a bundle enforcing more than 64 endpoints: every one is checked, and the messages name at most 64 (docs/device-messages.md)', async (t) => {
  const big: TrustState = { ...committed, maxBundleBytes: 16384 };
  const endpoints = Array.from({ length: 70 }, (_, i) => ({ host: 'api.example.com', port: 1000 + i, pins: [newKey, backup] }));
  const b = bundle({ endpoints });
  const step = receiveBundle(trustOf(big), verified(b.bytes, big), NOW, hc);
  t.equal(step.run.length, 70, 'the machine checks them all');
  const state = { seq: 4, bundleId: b.id, firmware: '2.0.0', model: 'th-100', keyEpoch: 0, time: NOW, provisional: provisionalStatus(step.trust)! };
  const readState = decodeAnyState(encodeState(state));
  t.ok(readState.ok, `the state a gateway reads: ${readState.ok ? '' : readState.detail}`);
  // All but the last pass; the last decides the window.
  const most = observeHandshakes(step.trust, endpoints.slice(0, 69).map((e) => seen(e.host, e.port, NOW, [newKey])), NOW + 1);
  t.equal(most.ack, null, 'one still open: not committed before every check passed');
  const done = observeHandshakes(most.trust, [seen('api.example.com', 1069, NOW, [newKey])], NOW + 2);
  t.equal(done.ack?.status, 'verified');
  const readVerified = decodeAnyAck(encodeAck(done.ack!));
  t.ok(readVerified.ok, `the verified ack a gateway reads: ${readVerified.ok ? '' : readVerified.detail}`);
  const silent = tickWindow(step.trust, NOW + 60);
  t.equal(silent.ack?.status, 'applied');
  const readApplied = decodeAnyAck(encodeAck(silent.ack!));
  t.ok(readApplied.ok, `the unverified applied ack a gateway reads: ${readApplied.ok ? '' : readApplied.detail}`);
});

t.test('an IPv6 endpoint that does not answer is named [::1]:443 in the ack, never ::1:443', async (t) => {
  const { step } = opened({ endpoints: [{ host: '::1', port: 443, pins: [newKey, backup] }] });
  t.same(step.run.map((e) => [e.host, e.port]), [['::1', 443]], 'the window dials the IPv6 endpoint');
  const s = observeHandshakes(step.trust, [{ ...seen('::1', 443, NOW, 'unreachable'), error: 'ECONNREFUSED' }], NOW + 60);
  t.equal(s.ack?.detail, '[::1]:443 did not answer in 1 attempt (ECONNREFUSED)');
});
