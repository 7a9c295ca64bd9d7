// The console's links read into pages without a browser (gateway/http/console/links.ts): the pages
// its own links name, and links no page answers to, refused before anything is fetched.
import t from 'tap';
import { MAX_ID, readLink } from '../../../../gateway/http/console/links.ts';

t.test("the console's own links name their pages", async (t) => {
  t.same(readLink(''), { page: 'fleet' });
  t.same(readLink('#/'), { page: 'fleet' });
  t.same(readLink('#/groups/thermostats?seq=none&model=T-1000%20v2'), { page: 'group', group: 'thermostats', seq: 'none', model: 'T-1000 v2' });
  t.same(readLink('#/groups/..'), { page: 'group', group: '..', seq: null, model: null }, 'a group name goes in a query, where dots are only dots');
  t.same(readLink('#/devices/th-1'), { page: 'device', id: 'th-1' });
  t.same(readLink('#/devices/th%3A1'), { page: 'device', id: 'th:1' });
  t.same(readLink('#/rollouts'), { page: 'rollouts' });
  t.same(readLink('#/rollouts/'), { page: 'rollouts' }, 'a trailing slash is the same page');
  t.same(readLink('#/rollouts/r-th-1-ab'), { page: 'rollout', id: 'r-th-1-ab' });
  t.same(readLink('#/stuck'), { page: 'stuck', group: null, rollout: null });
  t.same(readLink('#/stuck?rollout=r-th-1-ab'), { page: 'stuck', group: null, rollout: 'r-th-1-ab' });
  t.same(readLink('#/stuck?group=thermostats'), { page: 'stuck', group: 'thermostats', rollout: null });
  t.same(readLink('#/bundles?group=thermostats'), { page: 'bundles', group: 'thermostats' });
  t.same(readLink(`#/bundles/${'ab'.repeat(32)}`), { page: 'bundle', id: 'ab'.repeat(32) });
  t.same(readLink('#/devices/%ZZ'), { page: 'device', id: '%ZZ' }, 'a malformed escape is left for the API to name');
  t.same(readLink(`#/rollouts/${'r'.repeat(MAX_ID)}`), { page: 'rollout', id: 'r'.repeat(MAX_ID) }, 'an id as long as the longest the API takes');
});

t.test('an id that is only dots, empty or too long is a bad link naming why; so is an odd query', async (t) => {
  const bad: Array<[string, string]> = [
    ['#/devices/..', '".." is not a device id: no id is only dots.'],
    ['#/devices/%2e%2e', '".." is not a device id: no id is only dots.'],
    ['#/devices/%2E.', '".." is not a device id: no id is only dots.'],
    ['#/devices/.', '"." is not a device id: no id is only dots.'],
    ['#/rollouts/..', '".." is not a rollout id: no id is only dots.'],
    ['#/bundles/%2e%2e', '".." is not a bundle id: no id is only dots.'],
    ['#/devices', 'This link names no device.'],
    ['#/devices/', 'This link names no device.'],
    ['#/groups/', 'This link names no group.'],
    [`#/devices/${'x'.repeat(MAX_ID + 1)}`, `The device id in this link is ${MAX_ID + 1} characters long: no id is longer than ${MAX_ID}.`],
    ['#/stuck?group=thermostats&rollout=r-th-1-ab', 'Stuck devices are of a group or of a rollout: the link gives both.'],
    ['#/stuck?group=', 'The parameter "group" is empty.'],
    ['#/stuck?group=a&group=b', 'The parameter "group" is given twice.'],
    ['#/stuck?grup=thermostats', '"grup" is not a parameter of this page: it takes "group" or "rollout".'],
    [`#/stuck?rollout=${'r'.repeat(MAX_ID + 1)}`, `The parameter "rollout" is ${MAX_ID + 1} characters long: no name or id is longer than ${MAX_ID}.`],
    ['#/groups/thermostats?limit=1', '"limit" is not a parameter of this page: it takes "seq" or "model".'],
    ['#/devices/th-1?x=1', 'This page takes no parameter; the link has "x".'],
    ['#/?x=1', 'This page takes no parameter; the link has "x".'],
  ];
  for (const [hash, message] of bad) t.same(readLink(hash), { page: 'bad_link', message }, hash);
});

t.test('a path no page answers to is not found', async (t) => {
  for (const hash of ['#/nothing', '#/devices/th-1/more', '#/devices//th-1', '#/stuck/x', '#/fleet/x']) t.same(readLink(hash), { page: 'not_found' }, hash);
});
