// The console's pages as trees, without a browser: the pin diff (the shape GET /v1/bundles/:id gives
// once the diff lands: this is where its rendering is checked), waves against thresholds, a held
// wave's reasons, which actions a role gets and what their dialogs say, the formats, and the
// element builder's refusals.
import t from 'tap';
import { h, safeHref, textOf, toHtml } from '../../../../gateway/http/console/view.ts';
import { badge, count, duration, endpoint, percent, stuckReason, utc, waveLabel, when } from '../../../../gateway/http/console/format.ts';
import { endpointText } from '../../../../firmware-manifest/index.ts';
import { bundleView, pinDiffView } from '../../../../gateway/http/console/render-bundle.ts';
import { actionBody, actionDialog, actionsBar, allowedActions, decisionsTimeline, dialogForm, heldPanel, pinFailuresTable, rolloutHeader, rolloutsTable, waveCard } from '../../../../gateway/http/console/render-rollout.ts';
import { devicesTable, deviceView, fleetView } from '../../../../gateway/http/console/render-fleet.ts';
import { stuckCsvName, stuckFilterForm, stuckTable } from '../../../../gateway/http/console/render-support.ts';
import type { BundleDetail, DeviceDetail, Group, PinDiff, Rollout, Thresholds, Wave } from '../../../../gateway/http/console/types.ts';

const P = (c: string) => `sha256/${c.repeat(43)}=`;
const T0 = Date.UTC(2026, 0, 1, 12, 0, 0);

const DIFF: PinDiff = {
  against: { kind: 'baseline', bundleId: 'ab'.repeat(32), seq: 7 },
  endpoints: [
    { host: 'api.example.com', port: 443, change: 'changed', added: [P('N')], removed: [P('O')], kept: [P('B')] },
    { host: 'new.example.com', port: 8443, change: 'added', added: [P('X'), P('Y')], removed: [], kept: [] },
    { host: 'old.example.com', port: 443, change: 'removed', added: [], removed: [P('Q'), P('R')], kept: [] },
    { host: 'same.example.com', port: 443, change: 'unchanged', added: [], removed: [], kept: [P('S'), P('T')] },
  ],
};

t.test('the pin diff: added pins marked "added" in <ins>, removed ones "removed" in <del>, kept ones plain, per endpoint', async (t) => {
  const html = toHtml(pinDiffView(DIFF));
  t.match(html, `<li class="pin-added"><span class="mark mark-added">added</span> <ins class="pin">${P('N')}</ins></li>`);
  t.match(html, `<li class="pin-removed"><span class="mark mark-removed">removed</span> <del class="pin">${P('O')}</del></li>`);
  t.match(html, `<li class="pin-kept"><span class="mark mark-kept">kept</span> <span class="pin">${P('B')}</span></li>`);
  t.match(html, 'href="#/bundles/' + 'ab'.repeat(32) + '">seq 7 (abababababab)</a>');
  const text = textOf(pinDiffView(DIFF));
  t.match(text, '3 pins added, 3 removed. Removing a pin can lock out devices');
  t.match(text, 'api.example.com:443 pins changed');
  t.match(text, 'new.example.com:8443 endpoint added');
  t.match(text, 'old.example.com:443 endpoint removed');
  t.match(text, 'same.example.com:443 unchanged');
  const order = [...html.matchAll(/class="pin-(added|removed|kept)"/g)].map((m) => m[1]);
  t.same(order.slice(0, 3), ['removed', 'added', 'kept'], 'removed first: what can lock devices out');

  const none = textOf(pinDiffView({ against: { kind: 'none' }, endpoints: [{ host: 'a.example', port: 443, change: 'added', added: [P('A'), P('B')], removed: [], kept: [] }] }));
  t.match(none, 'The group has no baseline yet');
  t.match(none, '2 pins added, 0 removed.');
  t.notMatch(none, 'lock out', 'no warning when nothing is removed');
});

t.test('a bundle shows its diff when the API gives one, and its decoded pins either way', async (t) => {
  const b: BundleDetail = {
    id: 'cd'.repeat(32), group: 'thermostats', seq: 8, size: 234, createdAt: T0, createdBy: 'olga', kid: '0011223344556677', version: 1, iat: T0 / 1000, exp: T0 / 1000 + 86400,
    endpoints: [{ host: 'api.example.com', port: 443, pins: [P('N'), P('B')], mode: 'report-only' }],
  };
  const plain = toHtml(bundleView(b));
  t.notMatch(plain, 'id="diff"');
  t.match(plain, P('N'));
  t.match(textOf(bundleView(b)), 'report-only');
  t.match(toHtml(bundleView({ ...b, diff: DIFF })), 'id="diff"');
});

const thresholds: Thresholds = { ackThreshold: 0.95, failureThreshold: 0.02, minDevices: 5, maxUnreachable: 0.5, timeoutSeconds: 3600, soakSeconds: 0 };
const figures = { members: 10000, pending: 0, sent: 1200, applied: 8500, rejected: 250, failing: 50, timedOut: 0, unreachable: 0, acked: 8550, responded: 8800, ackRatio: 0.855, failureRatio: 300 / 8800, failureCounted: true, unreachableRatio: 0 };
const wave = (over: Partial<Wave> = {}): Wave => ({ index: 1, state: 'active', plannedSize: '100%', size: 10000, ...figures, rejectedByReason: { bad_signature: 250 }, thresholds, startedAt: T0, deadline: T0 + 3600_000, soakUntil: null, endedAt: null, ...over });

const rollout = (over: Partial<Rollout> = {}): Rollout => ({
  id: 'r-thermostats-8-x', state: 'running', bundle: { id: 'cd'.repeat(32), seq: 8, group: 'thermostats' }, target: { group: 'thermostats' }, onMiss: 'hold', devices: 10100, wave: 1,
  createdAt: T0, startedAt: T0, endedAt: null, nextDeadline: T0 + 3600_000, createdBy: 'olga', previousBundle: 'ab'.repeat(32),
  waves: [wave({ index: 0, state: 'passed', members: 100, size: 100, applied: 100, sent: 0, rejected: 0, failing: 0, acked: 100, responded: 100, ackRatio: 1, failureRatio: 0, rejectedByReason: {} }), wave()],
  decisions: [{ at: T0, actor: 'olga', action: 'start', reason: 'operator', from: 'pending', to: 'running' }],
  ...over,
});

t.test('a wave: a bar of its members by status, the counts with separators, each ratio against its threshold', async (t) => {
  const node = waveCard(wave(), 2);
  const html = toHtml(node);
  const text = textOf(node);
  t.match(text, 'Wave 2 of 2');
  t.match(html, '<span class="seg seg-applied" style="width: 85%" title="8,500 applied"></span>');
  t.match(html, 'role="img" aria-label="Wave 2 of 2: 8,500 applied, 50 failing, 250 rejected, 1,200 sent, no answer yet"');
  t.match(text, 'Acknowledged 85.5% of 10,000 reachable (8,550); needs 95.0% not yet');
  t.match(text, 'Failures 3.4% of 8,800 that answered (300); limit 2.0% over');
  t.match(html, '<span class="verdict not-ok">over</span>');
  t.match(text, 'Offline all wave 0.0% (0); limit 50.0% within');
  const early = textOf(waveCard(wave({ responded: 2, rejected: 1, failing: 0, failureCounted: false }), 2));
  t.match(early, '1 of 2 so far; counted once 5 have answered (limit 2.0%)');
  t.match(textOf(waveCard(wave({ state: 'pending', startedAt: null, deadline: null }), 2)), 'not started; times out 60 min after it starts');
});

t.test("the waves of an aborted rollout: the one in progress shows Aborted, the ones never reached Cancelled", async (t) => {
  const aborted = toHtml(waveCard(wave({ state: 'aborted', endedAt: wave().startedAt! + 60_000 }), 2));
  t.match(aborted, '<span class="badge tone-bad" data-state="aborted">Aborted</span>');
  const cancelled = waveCard(wave({ state: 'cancelled', startedAt: null, deadline: null }), 2);
  t.match(toHtml(cancelled), '<span class="badge tone-neutral" data-state="cancelled">Cancelled</span>');
  t.match(textOf(cancelled), 'never started: the rollout was aborted first');
  t.notMatch(textOf(cancelled), 'times out', 'no timeout promised for a wave that will never run');
});

t.test('an aborted or cancelled wave says what became of it, and nothing on its card reads as still to come', async (t) => {
  const aborted = textOf(waveCard(wave({ state: 'aborted', pending: 300, sent: 900, endedAt: T0 + 60_000 }), 2));
  t.match(aborted, 'Aborted Jan 1, 2026, 12:01:00 PM UTC: the rollout was aborted while this wave was in progress; nothing more is sent, and these figures are final');
  t.match(aborted, 'Acknowledged 85.5% of 10,000 reachable (8,550); it needed 95.0%');
  t.match(aborted, '900 sent, never answered');
  t.match(aborted, '300 never sent');
  t.match(textOf(waveCard(wave({ state: 'aborted', responded: 2, rejected: 1, failing: 0, failureCounted: false }), 2)), '1 of 2 that answered; never counted: fewer than 5 answered');
  const cancelled = textOf(waveCard(wave({ state: 'cancelled', members: 40, pending: 40, sent: 0, applied: 0, rejected: 0, failing: 0, acked: 0, responded: 0, ackRatio: 0, failureRatio: 0, failureCounted: false, startedAt: null, deadline: null }), 2));
  t.match(cancelled, 'Cancelled: the rollout was aborted before this wave started; its 40 devices were never sent the bundle.');
  t.match(cancelled, '40 never sent');
  t.notMatch(cancelled, 'Acknowledged', 'a wave that never ran has no ratios');
  for (const [what, text] of [['aborted', aborted], ['cancelled', cancelled]]) {
    for (const pending of ['not yet', 'so far', 'counted once', 'no answer yet', 'not sent yet', 'needs ']) t.notMatch(text, pending, `${what}: no "${pending}"`);
  }
});

t.test('a wave of health-checked devices: verified, verifying and reverted in the bar, reverts among the failures', async (t) => {
  const node = waveCard(wave({ applied: 100, verified: 8000, verifying: 400, reverted: 150, rejected: 0, failing: 0, sent: 1350, acked: 8100, responded: 8650, failureRatio: 150 / 8650, rejectedByReason: {} }), 2);
  const html = toHtml(node);
  t.match(html, 'aria-label="Wave 2 of 2: 8,000 verified, 100 applied, 400 verifying, 150 reverted, 1,350 sent, no answer yet"');
  t.match(html, '<span class="seg seg-reverted"');
  t.match(textOf(node), 'Failures 1.7% of 8,650 that answered (150)');
  const held = rollout({
    state: 'held',
    decisions: [{ at: T0, actor: 'system', action: 'hold', reason: 'failure_threshold', from: 'running', to: 'held', wave: 1, figures: { ...figures, reverted: 5 }, endpoint: 'api.example.com:443' }],
  });
  t.match(textOf(heldPanel(held)!), 'Devices reverted to their previous pins by themselves: with the new ones they could not reach api.example.com:443 (5 of them when it was held).');
});

t.test("a held rollout says why, when and by whom, the figures then against the thresholds, and the rejections by reason", async (t) => {
  const held = rollout({
    state: 'held',
    decisions: [
      { at: T0, actor: 'olga', action: 'start', reason: 'operator', from: 'pending', to: 'running' },
      { at: T0 + 60_000, actor: 'system', action: 'hold', reason: 'failure_threshold', from: 'running', to: 'held', wave: 1, figures },
    ],
  });
  const text = textOf(heldPanel(held)!);
  t.match(text, 'Held at Wave 2 of 2');
  t.match(text, 'Why: the share of devices rejecting the bundle, reverting it or reporting pin failures crossed the failure threshold failure_threshold');
  t.match(text, 'by the gateway');
  t.match(text, 'Failures: 3.4% of 8,800 that answered (limit 2.0%)');
  t.match(text, 'Rejections by reason: bad_signature 250');
  t.equal(heldPanel(rollout()), null, 'nothing when not held');
  const paused = rollout({ state: 'held', decisions: [{ at: T0, actor: 'olga', action: 'pause', reason: 'paused', from: 'running', to: 'held', wave: 1, figures }] });
  t.match(textOf(heldPanel(paused)!), 'Why: an operator paused it paused. Decided');
  t.match(textOf(heldPanel(paused)!), 'by olga');
  const timeline = textOf(decisionsTimeline(held));
  t.match(timeline, 'gateway Held wave 2 of 2 (Running → Held): the share of devices');
  t.ok(timeline.indexOf('Held wave') < timeline.indexOf('olga Started'), 'newest first');
});

t.test('actions: none for a viewer; for an operator, those the state allows; approval only when the API says it is needed', async (t) => {
  t.same(allowedActions(rollout(), 'viewer'), []);
  t.equal(actionsBar(rollout(), 'viewer', () => {}), null, 'a viewer gets no action bar');
  t.same(allowedActions(rollout(), 'operator'), ['pause', 'abort', 'rollback']);
  t.same(allowedActions(rollout({ state: 'held' }), 'admin'), ['resume', 'abort', 'rollback']);
  t.same(allowedActions(rollout({ state: 'pending', waves: [wave({ startedAt: null })] }), 'operator'), ['start', 'abort']);
  t.same(allowedActions(rollout({ state: 'completed' }), 'operator'), ['rollback']);
  t.same(allowedActions(rollout({ state: 'aborted' }), 'operator'), ['rollback'], 'what an aborted rollout sent may be rolled back');
  t.same(allowedActions(rollout({ state: 'aborted', rolledBackBy: 'r-x' }), 'operator'), [], 'once');
  t.same(allowedActions(rollout({ state: 'completed', rolledBackBy: 'r-2' }), 'operator'), [], 'rolled back once');
  t.same(allowedActions(rollout({ previousBundle: null }), 'operator'), ['pause', 'abort'], 'nothing to roll back to');
  t.same(allowedActions(rollout({ state: 'aborted', waves: [wave({ startedAt: null })] }), 'operator'), [], 'an aborted rollout that never started a wave has nothing to roll back');
  const approval = { needed: true, required: 3, remaining: 1, approvals: [{ actor: 'otto', at: T0 }], requestedBy: 'olga', requestedAt: T0, removed: [{ host: 'api.example.com', port: 443, pins: ['p'], endpoint: false }], reason: 'removes 1 pin of api.example.com:443' };
  const gated = rollout({ state: 'pending', createdBy: 'olga', waves: [wave({ startedAt: null })], approval });
  t.same(allowedActions(gated, 'operator', 'ana'), ['approve', 'abort'], 'approve in place of start while approval is needed');
  t.same(allowedActions(gated, 'admin', 'adam'), ['approve', 'abort'], 'an admin approves too');
  t.same(allowedActions(gated, 'operator', 'olga'), ['abort'], 'not for its creator');
  t.same(allowedActions(gated, 'operator', 'otto'), ['abort'], 'nor for one who approved it already');
  t.same(allowedActions(gated, 'viewer', 'vera'), []);
  const bar = textOf(actionsBar(gated, 'operator', () => {}, 'ana')!);
  t.match(bar, 'Needs approval: it removes 1 pin of api.example.com:443; 1 more approval by an operator other than olga (3 must agree, its creator being one); approved by otto');
  t.match(bar, 'It cannot start until then.');
  t.match(textOf(actionsBar(gated, 'operator', () => {}, 'olga')!), 'You created it, so another operator must approve it before it can start.');
  const approved = rollout({ state: 'pending', createdBy: 'olga', waves: [wave({ startedAt: null })], approval: { ...approval, needed: false, remaining: 0 } });
  t.same(allowedActions(approved, 'operator', 'olga'), ['start', 'abort'], 'approved: its creator may start it');
  t.match(textOf(actionsBar(approved, 'operator', () => {}, 'olga')!), 'Approved: it removes 1 pin of api.example.com:443; approved by otto');
  t.match(textOf(rolloutsTable([gated])), 'Pending needs approval', 'the list says which rollouts wait');
  t.notMatch(textOf(rolloutsTable([approved])), 'needs approval');
  t.match(toHtml(actionsBar(rollout(), 'operator', () => {})!), '<button type="button" id="action-pause">Pause…</button>');
});

t.test('each dialog names what will happen, and its fields go back as the API body (percentages as ratios, only changes)', async (t) => {
  const r = rollout({ state: 'held' });
  const resume = actionDialog('resume', r);
  t.equal(resume.title, 'Resume rollout r-thermostats-8-x?');
  t.match(resume.lines[0], 'Wave 2 of 2 goes on with the thresholds below and a fresh timeout from now');
  const form = toHtml(dialogForm(resume));
  t.match(form, '<label for="field-failureThreshold">Failure threshold (%)</label><input id="field-failureThreshold" name="failureThreshold" aria-describedby="field-failureThreshold-hint" type="number" min="0" max="100" step="any" required value="2">');
  const same = { ackThreshold: '95', failureThreshold: '2', minDevices: '5', maxUnreachable: '50', timeoutSeconds: '3600', soakSeconds: '0', requireVerified: 'yes' };
  t.same(actionBody(resume, { ...same, failureThreshold: '10' }), { failureThreshold: 0.1 });
  t.equal(actionBody(resume, same), null, 'nothing changed: no body');
  // docs/architecture.md §9: whether health-checked devices count once verified is the operator's to change on resume.
  t.match(form, '<select id="field-requireVerified" name="requireVerified" aria-describedby="field-requireVerified-hint"><option value="yes" selected>once verified');
  t.same(actionBody(resume, { ...same, requireVerified: 'no' }), { requireVerified: false }, 'counting applied health-checked devices again');
  t.throws(() => actionBody(resume, { ...same, requireVerified: 'maybe' }), { message: 'Devices with a health check count: choose one' });
  const relaxed = actionDialog('resume', rollout({ state: 'held', waves: rollout().waves.map((w) => ({ ...w, thresholds: { ...w.thresholds, requireVerified: false } })) }));
  t.match(toHtml(dialogForm(relaxed)), '<option value="no" selected>once applied</option>', 'a wave already counting applied shows so');
  t.same(actionBody(relaxed, { ...same, requireVerified: 'yes' }), { requireVerified: true });
  t.throws(() => actionBody(resume, { ackThreshold: 'x' }), { message: 'Ack threshold: a number is needed' });
  const abort = actionDialog('abort', r);
  t.ok(abort.danger);
  t.same(actionBody(abort, { reason: ' pins wrong ' }), { reason: 'pins wrong' });
  t.equal(actionBody(abort, { reason: '' }), null);
  t.match(actionDialog('start', rollout({ state: 'pending' })).lines[0], 'Wave 1 of 2 (100 of 10,100 devices) is sent bundle seq 8 of group thermostats now.');
  t.match(actionDialog('rollback', r).lines.join(' '), "pins of the group's previous bundle (abababababab)");
  t.match(actionDialog('rollback', rollout({ state: 'completed' })).lines[1], 'baseline');
  t.match(actionDialog('rollback', rollout({ state: 'aborted' })).lines[1], 'stays aborted');
  t.match(actionDialog('pause', rollout()).lines[0], 'wave 2 of 2 keeps its state');
  t.match(actionDialog('approve', rollout({ state: 'pending' })).title, 'Approve rollout');
});

t.test('formats: thousands separators, percentages, times with UTC on hover, waves from 1, states as words', async (t) => {
  t.equal(count(1234567), '1,234,567');
  t.equal(percent(0.9534), '95.3%');
  t.equal(utc(T0), '2026-01-01 12:00:00 UTC');
  t.match(toHtml(when(T0) as never), /^<time datetime="2026-01-01T12:00:00.000Z" title="2026-01-01 12:00:00 UTC">Jan 1, 2026, \d\d:\d\d:\d\d [AP]M .+<\/time>$/);
  t.equal(when(null), '—');
  t.equal(waveLabel(0, 4), 'Wave 1 of 4');
  t.same([duration(90), duration(900), duration(7200), duration(3 * 86400)], ['90 s', '15 min', '2 h', '3 d']);
  t.equal(toHtml(badge('held')), '<span class="badge tone-warn" data-state="held">Held</span>', 'a word and a colour');
  t.equal(toHtml(badge('something_new')), '<span class="badge tone-neutral" data-state="something_new">something_new</span>');
  t.equal(stuckReason('rejected:bad_signature'), 'rejected: bad signature');
  t.equal(stuckReason('reverted:api.example.com:443'), 'reverted: api.example.com:443');
  t.equal(stuckReason('no_ack'), 'connected, no acknowledgement yet');
});

t.test('the other pages: fleet, devices, a device, rollouts, stuck, pin failures', async (t) => {
  const g: Group = { group: 'thermostats', devices: 12000, connected: 11000, revoked: 2, neverConnected: 5, bySeq: [{ seq: 7, devices: 11990, connected: 11000 }, { seq: null, devices: 10, connected: 0 }], byModel: [{ model: 'th-100', devices: 12000, connected: 11000 }], baseline: { bundle: 'ab'.repeat(32), seq: 7 }, rollout: { id: 'r-1', state: 'held', bundleSeq: 8 } };
  const fleet = textOf(fleetView([g]));
  t.match(fleet, '1 group, 12,000 devices, 11,000 connected now.');
  t.match(fleet, 'Connected now 11,000 (91.7%)');
  t.match(fleet, 'Baseline seq 7 (abababababab)');
  t.match(fleet, 'seq 8 Held');
  t.match(toHtml(fleetView([g])), 'href="#/groups/thermostats?seq=none">never reported</a>');
  t.match(textOf(fleetView([])), 'No devices are provisioned yet.');
  t.match(textOf(devicesTable('Devices', [])), 'No devices match.');
  const d: DeviceDetail = {
    id: 'th-1', group: 'thermostats', model: 'th-100', firmware: '1.0.0', seq: 7, bundle: 'ab'.repeat(32), connected: false, state: 'offline', lastSeen: T0, createdAt: T0, keyEpoch: null, broker: 'mqtt://broker-2.example.net:1883', lastConnectAt: T0, lastDisconnectAt: T0, revokedAt: null,
    rollout: { id: 'r-1', state: 'held', status: 'rejected', wave: 0, reason: 'bad_signature', at: T0 },
    history: [{ at: T0 - 1, bundleId: 'ab'.repeat(32), seq: 7, event: 'sent' }, { at: T0, rolloutId: 'r-1', bundleId: 'cd'.repeat(32), seq: 8, event: 'rejected', reason: 'bad_signature' }],
    telemetry: [{ at: T0, hostname: 'api.example.com', port: 443, result: 'pin_mismatch', servedPins: [P('E')], knownPins: [], seq: 7, count: 3, rolloutId: null }],
  };
  const dv = textOf(deviceView(d));
  t.match(dv, 'Device th-1 Offline');
  t.match(dv, 'Broker mqtt://broker-2.example.net:1883', 'the broker it was provisioned onto');
  t.match(textOf(deviceView({ ...d, broker: null })), 'Broker the gateway’s embedded broker');
  t.match(dv, 'r-1 Held — wave 1: Rejected bad_signature');
  t.ok(dv.indexOf('rejected seq 8 r-1 bad_signature') < dv.indexOf('sent seq 7 baseline'), 'history newest first');
  t.match(dv, `api.example.com:443 mismatch (enforced) ${P('E')}`);
  t.match(textOf(rolloutsTable([rollout()])), 'r-thermostats-8-x thermostats seq 8 Running Wave 2 of 2 10,100');
  t.match(textOf(rolloutHeader(rollout())), 'Progress Wave 2 of 2');
  const stuck = textOf(stuckTable('group thermostats', [{ id: 'th-1', group: 'thermostats', model: null, seq: null, bundle: null, targetSeq: 8, reason: 'never_connected', since: T0, connected: false }]));
  t.match(stuck, 'th-1 thermostats — never reported 8 never connected never_connected');
  t.match(textOf(stuckTable('group x', [])), 'No device of group x is stuck.');
  t.match(toHtml(stuckFilterForm([g], [rollout()], { rollout: 'r-thermostats-8-x' }, () => {})), '<option value="r-thermostats-8-x" selected>');
  t.equal(stuckCsvName({ group: 'a b' }), 'stuck-group-a_b.csv');
  t.equal(stuckCsvName({ rollout: 'r-1' }), 'stuck-rollout-r-1.csv');
  const pf = textOf(pinFailuresTable([{ host: 'api.example.com', port: 443, result: 'pin_mismatch', observedPin: P('E'), bundleId: null, devices: 32, devicesCapped: true, failures: 1234, lastReceived: new Date(T0).toISOString() }]));
  t.match(pf, `api.example.com:443 ${P('E')} mismatch (enforced) 32+ 1,234`);
});

t.test('an IPv6 endpoint is written [::1]:443 in the console, as the gateway and the CLI write it', async (t) => {
  for (const [host, port] of [['::1', 443], ['2001:db8::7', 8443], ['api.example.com', 443], ['10.0.0.7', 8883]] as const) t.equal(endpoint(host, port), endpointText(host, port), `${host} ${port}`);
  const pf = textOf(pinFailuresTable([{ host: '::1', port: 443, result: 'pin_mismatch', observedPin: P('E'), bundleId: null, devices: 1, devicesCapped: false, failures: 1, lastReceived: new Date(T0).toISOString() }]));
  t.match(pf, `[::1]:443 ${P('E')} mismatch (enforced)`);
});

t.test('the element builder writes text as text and refuses links off this server', async (t) => {
  t.equal(toHtml(h('p', { title: '"><x>' }, '<script>alert(1)</script>')), '<p title="&quot;&gt;&lt;x&gt;">&lt;script&gt;alert(1)&lt;/script&gt;</p>');
  t.throws(() => h('a', { href: 'javascript:alert(1)' }), { message: /must stay on this server/ });
  t.throws(() => h('a', { href: '//evil.example/x' }), { message: /must stay on this server/ });
  t.throws(() => h('a', { href: 'https://evil.example/' }));
  t.throws(() => h('a', { 'on click': 'x' }), { message: /bad attribute/ });
  t.throws(() => h('scr ipt'), { message: /bad tag/ });
  t.ok(safeHref('#/rollouts') && safeHref('/docs'));
  t.equal(toHtml(h('input', { required: true, disabled: false, value: 0 })), '<input required value="0">');
  t.equal(textOf(h('p', null, 'a', null, false, ['b', 3], h('p', null, 'c'))), 'ab3 c');
});
