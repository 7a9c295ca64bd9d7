// The fleet pages as trees (view.ts): the groups with their devices by seq, model and connected and
// their baseline; a group's devices; one device with its state, seq, bundle, rollout history and
// recent pin-failure reports. Pure: data in, tree out.
import { badge, count, endpoint, percent, shortId, when } from './format.ts';
import { enc, facts, link, section, table } from './parts.ts';
import type { Device, DeviceDetail, Group } from './types.ts';
import { h, type VNode } from './view.ts';

const seqText = (seq: number | null) => (seq === null ? 'never reported' : `seq ${count(seq)}`);

/** One group: its counts, baseline, rollout under way, and its devices by seq and by model (each a link to those devices). */
export function groupCard(g: Group): VNode {
  const base = `/groups/${enc(g.group)}`;
  return h(
    'article',
    { class: 'group card', 'aria-labelledby': `group-${g.group}-h` },
    h('h2', { id: `group-${g.group}-h` }, link(base, g.group)),
    facts([
      ['Devices', `${count(g.devices)}${g.revoked > 0 ? ` (and ${count(g.revoked)} revoked)` : ''}`],
      ['Connected now', `${count(g.connected)} (${percent(g.devices === 0 ? 0 : g.connected / g.devices)})`],
      ['Never connected', g.neverConnected > 0 ? count(g.neverConnected) : null],
      ['Baseline', g.baseline ? link(`/bundles/${enc(g.baseline.bundle)}`, `${g.baseline.seq === null ? 'bundle' : `seq ${count(g.baseline.seq)}`} (${shortId(g.baseline.bundle)})`) : 'none yet: the group runs its firmware’s initial pins'],
      ['Rollout under way', g.rollout ? h('span', null, link(`/rollouts/${enc(g.rollout.id)}`, `seq ${count(g.rollout.bundleSeq)}`), ' ', badge(g.rollout.state)) : null],
      ['Stuck devices', link(`/stuck?group=${enc(g.group)}`, 'the devices not on the pins they should hold')],
    ]),
    h(
      'div',
      { class: 'split' },
      table(
        `${g.group}: devices by seq`,
        ['Seq', 'Devices', 'Connected'],
        g.bySeq.map((s) => [link(`${base}?seq=${s.seq === null ? 'none' : s.seq}`, seqText(s.seq)), count(s.devices), count(s.connected)]),
        { empty: 'No devices.' },
      ),
      table(
        `${g.group}: devices by model`,
        ['Model', 'Devices', 'Connected'],
        g.byModel.map((m) => [m.model === null ? 'not reported yet' : link(`${base}?model=${enc(m.model)}`, m.model), count(m.devices), count(m.connected)]),
        { empty: 'No devices.' },
      ),
    ),
  );
}

export function fleetView(groups: Group[]): VNode {
  const devices = groups.reduce((n, g) => n + g.devices, 0);
  const connected = groups.reduce((n, g) => n + g.connected, 0);
  return h(
    'div',
    null,
    h('h1', null, 'Fleet'),
    h('p', { class: 'lede' }, `${count(groups.length)} group${groups.length === 1 ? '' : 's'}, ${count(devices)} devices, ${count(connected)} connected now.`),
    groups.length === 0 ? h('p', { class: 'empty' }, 'No devices are provisioned yet.') : h('div', { class: 'cards' }, groups.map(groupCard)),
  );
}

/** A page of devices. */
export function devicesTable(caption: string, items: Device[]): VNode {
  return table(
    caption,
    ['Device', 'State', 'Model', 'Firmware', 'Seq', 'Bundle', 'Last seen'],
    items.map((d) => [
      link(`/devices/${enc(d.id)}`, d.id),
      badge(d.state),
      d.model ?? '—',
      d.firmware ?? '—',
      d.seq === null ? '—' : count(d.seq),
      d.bundle === null ? '—' : link(`/bundles/${enc(d.bundle)}`, h('code', null, shortId(d.bundle))),
      when(d.lastSeen),
    ]),
    { empty: 'No devices match.' },
  );
}

const EVENTS: Record<string, string> = { sent: 'sent', applied: 'applied', verified: 'applied and verified', rejected: 'rejected', timed_out: 'timed out', failing: 'reported pin failures', unreachable: 'unreachable (offline all wave)', reverted: 'reverted' };

/** One device: its facts, its place in a rollout, its history (newest first), its recent pin-failure reports. */
export function deviceView(d: DeviceDetail): VNode {
  const r = d.rollout;
  return h(
    'div',
    null,
    h('h1', null, 'Device ', h('code', null, d.id), ' ', badge(d.state)),
    facts([
      ['Group', link(`/groups/${enc(d.group)}`, d.group)],
      ['Model', d.model ?? 'not reported yet'],
      ['Firmware', d.firmware ?? 'not reported yet'],
      ['Seq', d.seq === null ? 'never reported' : count(d.seq)],
      ['Bundle', d.bundle === null ? 'the firmware’s initial pins' : link(`/bundles/${enc(d.bundle)}`, h('code', null, shortId(d.bundle)))],
      ['Key epoch', d.keyEpoch === null ? null : count(d.keyEpoch)],
      // docs/architecture.md §8: with several brokers, support needs to know which one the device uses.
      ['Broker', d.broker === null ? 'the gateway’s embedded broker' : h('code', null, d.broker)],
      ['Last seen', when(d.lastSeen)],
      ['Last connected', d.lastConnectAt === null ? null : when(d.lastConnectAt)],
      ['Last disconnected', d.lastDisconnectAt === null ? null : when(d.lastDisconnectAt)],
      ['Provisioned', when(d.createdAt)],
      ['Revoked', d.revokedAt === null ? null : when(d.revokedAt)],
      ['Rollout', r ? h('span', null, link(`/rollouts/${enc(r.id)}`, r.id), ' ', badge(r.state), ` — wave ${r.wave + 1}: `, badge(r.status), r.reason ? [' ', h('code', null, r.reason)] : '') : 'none'],
    ]),
    section(
      'History',
      table(
        `${d.id}: rollout history, newest first`,
        ['When', 'Event', 'Bundle', 'Rollout', 'Reason'],
        [...d.history].reverse().map((e) => [when(e.at), EVENTS[e.event] ?? e.event, link(`/bundles/${enc(e.bundleId)}`, `seq ${count(e.seq)}`), e.rolloutId ? link(`/rollouts/${enc(e.rolloutId)}`, e.rolloutId) : 'baseline', e.reason ? h('code', null, e.reason) : '—']),
        { empty: 'Nothing has been sent to this device yet.' },
      ),
      { id: 'history' },
    ),
    section(
      'Recent pin failures',
      table(
        `${d.id}: recent pin-failure reports, newest first`,
        ['Received', 'Endpoint', 'Result', 'Served pins', 'On seq', 'Count'],
        [...d.telemetry].reverse().map((t) => [when(t.at), h('code', null, endpoint(t.hostname, t.port)), t.result === 'pin_mismatch' ? 'mismatch (enforced)' : t.result.replaceAll('_', ' '), h('span', { class: 'pins' }, t.servedPins.map((p) => h('code', { class: 'pin' }, p))), count(t.seq), count(t.count)]),
        { empty: 'This device has reported no pin failure.' },
      ),
      { id: 'telemetry' },
    ),
  );
}
