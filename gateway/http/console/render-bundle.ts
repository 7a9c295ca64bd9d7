// The bundles pages as trees (view.ts): the list, and one bundle decoded, with its pins against
// what its group runs now when the API gives that diff: pins added in one colour and word, pins
// removed in another, per endpoint (docs/architecture.md §10). Pure: data in, tree out.
import { badge, count, endpoint, shortId, when } from './format.ts';
import { enc, facts, link, section, table } from './parts.ts';
import type { Bundle, BundleDetail, PinDiff } from './types.ts';
import { h, type VNode } from './view.ts';

export function bundlesTable(items: Bundle[]): VNode {
  return table(
    'Bundles',
    ['Bundle', 'Group', 'Seq', 'Size', 'Created', 'By'],
    items.map((b) => [link(`/bundles/${enc(b.id)}`, h('code', null, shortId(b.id))), b.group, count(b.seq), `${count(b.size)} bytes`, when(b.createdAt), b.createdBy ?? '—']),
    { empty: 'No bundles yet.' },
  );
}

const epoch = (s: number | undefined) => (s === undefined ? null : when(s * 1000));

const CHANGE: Record<string, string> = { added: 'endpoint added', removed: 'endpoint removed', changed: 'pins changed', unchanged: 'unchanged' };

/** A pin in a diff: its word and colour say what happens to it. */
function diffPin(pin: string, kind: 'added' | 'removed' | 'kept'): VNode {
  const word = kind === 'added' ? 'added' : kind === 'removed' ? 'removed' : 'kept';
  const tag = kind === 'added' ? 'ins' : kind === 'removed' ? 'del' : 'span';
  return h('li', { class: `pin-${kind}` }, h('span', { class: `mark mark-${kind}` }, word), ' ', h(tag, { class: 'pin' }, pin));
}

/** The pins of a bundle against what the group runs now, per endpoint. */
export function pinDiffView(diff: PinDiff): VNode {
  const against =
    diff.against.kind === 'baseline'
      ? h('p', null, 'Against the group’s baseline, ', link(`/bundles/${enc(diff.against.bundleId)}`, `seq ${count(diff.against.seq)} (${shortId(diff.against.bundleId)})`), ':')
      : h('p', null, 'The group has no baseline yet (it runs its firmware’s initial pins): every pin is new to it.');
  const removed = diff.endpoints.reduce((n, e) => n + e.removed.length, 0);
  const added = diff.endpoints.reduce((n, e) => n + e.added.length, 0);
  return section(
    'Pins against what the group runs now',
    [
      against,
      h('p', { class: 'diff-summary' }, `${count(added)} pin${added === 1 ? '' : 's'} added, ${count(removed)} removed.`, removed > 0 ? h('strong', { class: 'warn-text' }, ' Removing a pin can lock out devices whose endpoint still serves it.') : null),
      h(
        'div',
        { class: 'diff' },
        diff.endpoints.map((e) =>
          h(
            'article',
            { class: `diff-endpoint change-${e.change}`, 'aria-labelledby': `diff-${e.host}-${e.port}` },
            h('h3', { id: `diff-${e.host}-${e.port}` }, h('code', null, endpoint(e.host, e.port)), ' ', h('span', { class: `change change-${e.change}` }, CHANGE[e.change] ?? e.change)),
            h('ul', { class: 'pins' }, e.removed.map((p) => diffPin(p, 'removed')), e.added.map((p) => diffPin(p, 'added')), e.kept.map((p) => diffPin(p, 'kept'))),
          ),
        ),
      ),
    ],
    { id: 'diff' },
  );
}

/** One bundle, decoded: facts, each endpoint's pins, a key rotation if it carries one, and the diff when the API gives it. */
export function bundleView(b: BundleDetail): VNode {
  return h(
    'div',
    null,
    h('h1', null, 'Bundle ', h('code', null, shortId(b.id)), ` — ${b.group}, seq ${count(b.seq)}`),
    facts([
      ['Id', h('code', { class: 'long' }, b.id)],
      ['Group', link(`/groups/${enc(b.group)}`, b.group)],
      ['Seq', count(b.seq)],
      ['Size', `${count(b.size)} bytes`],
      ['Signed by key', h('code', null, b.kid)],
      ['Issued', when(b.iat * 1000)],
      ['Expires', when(b.exp * 1000)],
      ['When it expires', b.expiryPolicy === 'ca-fallback' ? 'devices fall back to CA validation' : 'devices keep enforcing its pins'],
      ['Created', h('span', null, when(b.createdAt), b.createdBy ? ` by ${b.createdBy}` : '')],
    ]),
    b.diff ? pinDiffView(b.diff) : null,
    section(
      'Endpoints and pins',
      table(
        'Endpoints and their pin sets',
        ['Endpoint', 'Mode', 'Pins', 'Not before', 'Not after'],
        b.endpoints.map((e) => [
          h('code', null, endpoint(e.host, e.port)),
          e.mode === 'report-only' ? badge('report-only') : 'enforce',
          h('ul', { class: 'pins' }, e.pins.map((p) => h('li', null, h('code', { class: 'pin' }, p)))),
          epoch(e.notBefore) ?? '—',
          epoch(e.notAfter) ?? '—',
        ]),
      ),
      { id: 'endpoints' },
    ),
    b.keyRotation ? section('Key rotation', facts([['Key epoch', count(b.keyRotation.epoch)], ['Trusted keys', h('ul', null, b.keyRotation.keys.map((k) => h('li', null, h('code', null, k))))]]), { id: 'keys' }) : null,
  );
}
