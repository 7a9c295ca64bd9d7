// The stuck-devices page as a tree (view.ts): the filter (by group or by rollout), the devices not
// on the pins they should hold, each with its reason in words and the API's code, and the CSV
// download. Pure: data in, tree out.
import { count, stuckReason, when } from './format.ts';
import { enc, link, table } from './parts.ts';
import type { Group, Rollout, StuckDevice } from './types.ts';
import { h, type Handler, type VNode } from './view.ts';

export interface StuckFilter {
  group?: string;
  rollout?: string;
}

/** The filter: a group or a rollout (choosing one clears the other), and the button that shows the list. */
export function stuckFilterForm(groups: Group[], rollouts: Rollout[], current: StuckFilter, onSubmit: Handler): VNode {
  const option = (value: string, text: string, selected: boolean) => h('option', { value, selected }, text);
  return h(
    'form',
    { class: 'filter', id: 'stuck-filter', onsubmit: onSubmit },
    h(
      'div',
      { class: 'field' },
      h('label', { for: 'stuck-group' }, 'Group'),
      h('select', { id: 'stuck-group', name: 'group' }, option('', '— any —', current.group === undefined), groups.map((g) => option(g.group, g.group, current.group === g.group))),
    ),
    h('span', { class: 'or' }, 'or'),
    h(
      'div',
      { class: 'field' },
      h('label', { for: 'stuck-rollout' }, 'Rollout'),
      h(
        'select',
        { id: 'stuck-rollout', name: 'rollout' },
        option('', '— any —', current.rollout === undefined),
        [...rollouts].reverse().map((r) => option(r.id, `${r.id} (${r.state})`, current.rollout === r.id)),
      ),
    ),
    h('button', { type: 'submit', id: 'stuck-show' }, 'Show stuck devices'),
  );
}

/** The stuck devices, oldest first. */
export function stuckTable(what: string, items: StuckDevice[]): VNode {
  return table(
    `Stuck devices of ${what}, oldest first`,
    ['Device', 'Group', 'Model', 'Seq', 'Should be on', 'Reason', 'Since', 'Connected'],
    items.map((s) => [
      link(`/devices/${enc(s.id)}`, s.id),
      s.group,
      s.model ?? '—',
      s.seq === null ? 'never reported' : count(s.seq),
      count(s.targetSeq),
      h('span', { class: 'stuck-reason', 'data-reason': s.reason }, stuckReason(s.reason), ' ', h('code', null, s.reason)),
      when(s.since),
      s.connected ? 'yes' : 'no',
    ]),
    { empty: `No device of ${what} is stuck.`, class: 'stuck' },
  );
}

/** The CSV file's name for a filter. */
export const stuckCsvName = (f: StuckFilter) => `stuck-${f.group !== undefined ? `group-${f.group}` : `rollout-${f.rollout}`}.csv`.replace(/[^A-Za-z0-9._-]/g, '_');
