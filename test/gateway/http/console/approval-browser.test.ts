// Two-person approval in a real browser (Debian's Chromium through playwright-core,
// docs/architecture.md §10): a pin-removing rollout refuses to start for its creator, a second
// operator approves it in the console (confirmed in a dialog), and the creator then starts it.
import t from 'tap';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { consoleHarness, launch, screenshots } from '../../../fixtures/browser.ts';
import { fleet, pin } from '../../../fixtures/gateway.ts';
import { API_TOKENS } from '../../../fixtures/http.ts';
import { hashToken } from '../../../../gateway/credentials.ts';

let browser: Browser;
t.before(async () => {
  browser = await launch();
});
t.teardown(() => browser?.close());
t.comment(`screenshots in ${screenshots}`);

const OTTO = 'otto-operator-token-0123456789abcdef';
const tokens = [...API_TOKENS, { name: 'otto', role: 'operator' as const, hash: hashToken(OTTO) }];

/** What a fetch from the page answers: the console's own session, with its CSRF token. */
const post = (page: Page, path: string) =>
  page.evaluate(async (p) => {
    const me = await (await fetch('/ui/session')).json();
    const r = await fetch(p, { method: 'POST', headers: { 'x-pinwave-csrf': me.csrf, 'content-type': 'application/json' }, body: '{}' });
    return { status: r.status, body: await r.json() };
  }, path);

t.test('a pin-removing rollout refuses to start for its creator and starts after a second operator approves in the console', async (t) => {
  const c = await consoleHarness(t, browser, { tokens }, { approval: { removePin: 2, addPin: 1 } });
  await fleet(c, 3);
  // The manifest ships "old" and "backup": this bundle drops "old".
  const b = (await c.call('POST', '/v1/bundles', { as: 'operator', body: { group: 'thermostats', pins: [{ host: 'api.example.com', pins: [pin('new'), pin('backup')] }] } })).json();
  const ro = (await c.call('POST', '/v1/rollouts', { as: 'operator', body: { bundle: b.id, target: { group: 'thermostats' }, waves: [{ size: '100%' }], start: true } })).json();
  t.equal(ro.state, 'pending');

  // The creator, olga: told why it waits; no Start, no Approve; the API refuses both anyway.
  const creator = await c.page();
  await c.signIn(creator.page, 'operator');
  await creator.page.goto(`${c.base}/ui#/rollouts/${ro.id}`);
  const note = creator.page.locator('#approval');
  await note.waitFor();
  t.match(await note.textContent(), 'Needs approval: it removes 1 pin of api.example.com:443; 1 more approval by an operator other than olga');
  t.match(await note.textContent(), 'You created it, so another operator must approve it before it can start.');
  t.same(await creator.page.locator('#ro-actions button').allTextContents(), ['Abort…'], 'no Start and no Approve for the creator');
  t.match(await post(creator.page, `/v1/rollouts/${ro.id}/start`), { status: 409, body: { code: 'PW_APPROVAL_REQUIRED' } });
  t.match(await post(creator.page, `/v1/rollouts/${ro.id}/approve`), { status: 403, body: { code: 'PW_SELF_APPROVAL' } });
  t.match(await creator.page.locator('#decisions li[data-action="request_approval"]').textContent(), /olga\s+Asked for approval: it removes pins its target holds now/);
  await creator.page.screenshot({ path: join(screenshots, 'rollout-needs-approval.png'), fullPage: true });

  // A second operator, otto, approves it in the console, confirming in a dialog.
  const other = await c.page();
  await other.page.goto(`${c.base}/ui`);
  await other.page.getByLabel('API token').fill(OTTO);
  await other.page.getByRole('button', { name: 'Sign in' }).click();
  await other.page.getByRole('heading', { name: 'Fleet', level: 1 }).waitFor();
  await other.page.goto(`${c.base}/ui#/rollouts/${ro.id}`);
  await other.page.getByRole('button', { name: 'Approve…' }).click();
  const dialog = other.page.getByRole('dialog');
  await dialog.waitFor();
  t.match(await dialog.textContent(), 'though it removes 1 pin of api.example.com:443');
  await other.page.getByRole('button', { name: 'Approve rollout' }).click();
  await dialog.waitFor({ state: 'detached' });
  await other.page.locator('#decisions li[data-action="approve"]').waitFor();
  t.match(await other.page.locator('#decisions li[data-action="approve"]').textContent(), /otto\s+Approved: by an operator/);
  t.equal(await other.page.locator('#action-approve').count(), 0, 'approved once: no second Approve');

  // A viewer reads where it stands, and has nothing to press.
  const viewer = await c.page();
  await c.signIn(viewer.page, 'viewer');
  await viewer.page.goto(`${c.base}/ui#/rollouts/${ro.id}`);
  await viewer.page.locator('#approval', { hasText: 'approved by otto' }).waitFor();
  t.equal(await viewer.page.locator('main button').count(), 0, 'no Approve or Start for a viewer');

  // The creator's page hears of it on its own (server-sent events) and now offers Start.
  await creator.page.locator('#approval', { hasText: 'Approved: it removes 1 pin of api.example.com:443; approved by otto' }).waitFor();
  await creator.page.getByRole('button', { name: 'Start…' }).click();
  await creator.page.getByRole('dialog').waitFor();
  await creator.page.getByRole('button', { name: 'Start rollout' }).click();
  await creator.page.locator('#ro-head .badge', { hasText: 'Running' }).waitFor();
  const now = (await c.call('GET', `/v1/rollouts/${ro.id}`)).json();
  t.equal(now.state, 'running');
  t.same(
    now.decisions.map((d: { action: string; actor: string }) => `${d.action} ${d.actor}`),
    ['request_approval olga', 'approve otto', 'start olga'],
    'the request, the approval and the start, each with who',
  );
});
