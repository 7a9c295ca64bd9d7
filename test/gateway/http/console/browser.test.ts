// The console in a real browser (Debian's Chromium through playwright-core): signing in, a rollout's
// wave bars moving on their own as devices ack (server-sent events), a held rollout's reason and
// failing endpoint, resuming it, the stuck list and its CSV, a viewer who has no actions (and whom
// the API refuses anyway), sign-out, the keyboard, and a narrow window.
import t from 'tap';
import { copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { consoleHarness, launch, screenshots, type ConsoleHarness } from '../../../fixtures/browser.ts';
import { fleet, pin, until } from '../../../fixtures/gateway.ts';
import { TOKENS } from '../../../fixtures/http.ts';
import type { SimDevice } from '../../../../device-sim/device.ts';

let browser: Browser;
t.before(async () => {
  browser = await launch();
});
t.teardown(() => browser?.close());
t.comment(`screenshots in ${screenshots}`);

const newPins = [{ host: 'api.example.com', pins: [pin('new'), pin('backup')] }];

async function rollout(c: ConsoleHarness, body: Record<string, unknown>) {
  const b = (await c.call('POST', '/v1/bundles', { as: 'operator', body: { group: 'thermostats', pins: newPins } })).json();
  const r = await c.call('POST', '/v1/rollouts', { as: 'operator', body: { bundle: b.id, target: { group: 'thermostats' }, ...body } });
  if (r.statusCode !== 201) throw new Error(`rollout: ${r.statusCode} ${r.body}`);
  return { bundle: b, rollout: r.json() };
}

const connectAll = async (t: { teardown(fn: () => unknown): void }, sims: SimDevice[]) => {
  t.teardown(() => Promise.all(sims.map((s) => s.disconnect())));
  await Promise.all(sims.map((s) => s.connect()));
};

/** The numbers a wave's legend shows, by status key ('applied', 'sent', ...). */
async function legend(page: Page, wave: number): Promise<Record<string, number>> {
  return page.locator(`.wave[data-wave="${wave}"] .legend li`).evaluateAll((lis) =>
    Object.fromEntries(lis.map((li) => [li.getAttribute('data-count'), Number(li.querySelector('.n')!.textContent!.replace(/[^0-9]/g, ''))])),
  );
}

t.test('an operator signs in with a token: a session cookie, HttpOnly and SameSite=Strict, and no token in the URL or in storage', async (t) => {
  const c = await consoleHarness(t, browser);
  await fleet(c, 3);
  const { context, page } = await c.page();
  const requests: string[] = [];
  page.on('request', (r) => requests.push(r.url()));
  await page.goto(`${c.base}/ui`);
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  await page.getByLabel('API token').fill('not-a-token-of-this-gateway');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByText('That token is not valid.').waitFor();
  await page.getByLabel('API token').fill(TOKENS.operator);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Fleet', level: 1 }).waitFor();
  t.match(await page.locator('#me').textContent(), /olga\s*operator/);
  t.match(await page.locator('.group').first().textContent(), /thermostats/);

  const cookies = await context.cookies();
  t.equal(cookies.length, 1);
  t.match(cookies[0], { name: 'pinwave_session', httpOnly: true, sameSite: 'Strict', path: '/', secure: false });
  t.equal(await page.evaluate(() => document.cookie), '', 'no script can read the session cookie');
  t.same(await page.evaluate(() => [localStorage.length, sessionStorage.length]), [0, 0], 'nothing in storage a script could read');
  t.notOk(requests.some((u) => u.includes(TOKENS.operator)), 'the token is in no URL');
  t.notOk(page.url().includes(TOKENS.operator));
  t.ok(requests.every((u) => u.startsWith(c.base)), 'nothing is fetched from anywhere else');
});

t.test("a running rollout's wave bars move on their own as devices ack, over server-sent events", async (t) => {
  const c = await consoleHarness(t, browser);
  const sims = await fleet(c, 20);
  const { rollout: ro } = await rollout(c, { waves: [{ size: '100%', minDevices: 5 }], start: true });
  const { page } = await c.page();
  let navigations = 0;
  page.on('framenavigated', (f) => f === page.mainFrame() && navigations++);
  await c.signIn(page, 'operator');
  await page.goto(`${c.base}/ui#/rollouts/${ro.id}`);
  await page.locator('.wave[data-wave="1"] .bar').waitFor();
  t.same(await legend(page, 1), { pending: 20 }, 'every device offline: nothing sent yet');
  t.match(await page.locator('.wave[data-wave="1"] h3').textContent(), 'Wave 1 of 1', 'waves are numbered from 1');
  await page.getByText('Live: updates as devices answer').waitFor();
  const before = navigations;

  await connectAll(t, sims);
  await page.locator('.wave[data-wave="1"] .legend li[data-count="applied"] .n', { hasText: '20' }).waitFor();
  t.same(await legend(page, 1), { applied: 20 });
  const width = await page.locator('.wave[data-wave="1"] .bar .seg-applied').evaluate((el) => (el as HTMLElement).style.width);
  t.equal(width, '100%', 'the applied segment fills the bar');
  // The harness's gateway has no timer: its tick passes the wave, and the page hears of it.
  await until(async () => (c.gw.tick(), (await c.gw.listRollouts())[0].state === 'completed'), 5000, 'completion');
  await page.locator('#ro-head .badge', { hasText: 'Completed' }).waitFor();
  t.equal(navigations, before, 'no reload: the page moved on its own');
  t.match(await page.locator('#decisions').textContent(), /gateway\s+Completed/);
});

t.test("a held rollout shows its reason and the failing endpoint; the operator resumes it, confirming in a dialog that Escape closes", async (t) => {
  const c = await consoleHarness(t, browser);
  const sims = await fleet(c, 10);
  await connectAll(t, sims);
  const { rollout: ro } = await rollout(c, { waves: [{ size: '100%', minDevices: 5, failureThreshold: 0.1, soakSeconds: 600 }], start: true });
  await until(async () => (await c.call('GET', `/v1/rollouts/${ro.id}`)).json().waves[0].applied === 10, 5000, 'every ack counted');
  for (const s of sims.slice(0, 4)) s.recordHandshake('api.example.com', 443, [pin('evil')]);
  await Promise.all(sims.map((s) => s.flushTelemetry()));
  await until(async () => (await c.call('GET', `/v1/rollouts/${ro.id}`)).json().state === 'held', 5000, 'the hold');

  const { page } = await c.page();
  await c.signIn(page, 'operator');
  await page.goto(`${c.base}/ui#/rollouts/${ro.id}`);
  const held = page.locator('#held');
  await held.waitFor();
  t.match(await held.textContent(), /Held at Wave 1 of 1/);
  t.match(await held.textContent(), /crossed the failure threshold/);
  t.match(await held.textContent(), /failure_threshold/);
  // The wave was held the moment a second device of ten failed: those are the figures recorded.
  t.match(await held.textContent(), /Failures: 20\.0% of 10 that answered \(limit 10\.0%\)/);
  const failures = page.locator('#pin-failures tbody tr');
  await until(async () => (await c.call('GET', `/v1/telemetry/pin-failures?rollout=${ro.id}`)).json().items[0]?.failures === 4, 5000, 'the four reports');
  await page.reload();
  await failures.first().waitFor();
  t.equal(await failures.count(), 1);
  t.match(await failures.first().textContent(), `api.example.com:443${pin('evil')}mismatch (enforced)44`);
  await page.screenshot({ path: join(screenshots, 'rollout-held.png'), fullPage: true });

  // The keyboard: Abort opens a dialog that keeps focus inside and closes on Escape, doing nothing.
  await page.locator('#action-abort').focus();
  await page.keyboard.press('Enter');
  const dialog = page.getByRole('dialog');
  await dialog.waitFor();
  t.match(await dialog.textContent(), /Nothing more is ever sent by this rollout/);
  t.equal(await page.evaluate(() => document.activeElement?.id), 'dialog-cancel', 'a destructive action starts on Cancel');
  for (let i = 0; i < 4; i++) await page.keyboard.press('Tab');
  t.ok(await page.evaluate(() => document.getElementById('dialog')!.contains(document.activeElement)), 'Tab stays inside the dialog');
  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'detached' });
  t.equal(await page.evaluate(() => document.activeElement?.id), 'action-abort', 'focus goes back to the button');
  t.equal((await c.call('GET', `/v1/rollouts/${ro.id}`)).json().state, 'held', 'Escape did nothing');

  await page.getByRole('button', { name: 'Resume…' }).click();
  await dialog.waitFor();
  t.match(await dialog.textContent(), /Wave 1 of 1 goes on with the thresholds below/);
  t.equal(await page.getByLabel('Failure threshold (%)').inputValue(), '10');
  await page.getByLabel('Failure threshold (%)').fill('50');
  await page.getByRole('button', { name: 'Resume rollout' }).click();
  await dialog.waitFor({ state: 'detached' });
  await page.locator('#ro-head .badge', { hasText: /Running|Completed/ }).waitFor();
  await page.locator('#decisions li[data-action="resume"]').waitFor();
  t.match(await page.locator('#decisions li[data-action="resume"]').textContent(), /olga\s+Resumed wave 1 of 1.*failures 50\.0%/);
  const now = (await c.call('GET', `/v1/rollouts/${ro.id}`)).json();
  t.match(now, { state: 'running', waves: [{ thresholds: { failureThreshold: 0.5 } }] });
  t.match(now.decisions.find((d: { action: string }) => d.action === 'resume'), { actor: 'olga', thresholds: { failureThreshold: 0.5 } });
});

t.test('the stuck list filters by rollout, gives each reason, and downloads a CSV of the same rows', async (t) => {
  const c = await consoleHarness(t, browser);
  const sims = await fleet(c, 5, 'th', (i) => ({ flashFails: i === 1 }));
  // th-0000 never connects; th-0001 rejects; the others apply
  await connectAll(t, sims.slice(1));
  const { rollout: ro } = await rollout(c, { waves: [{ size: '100%', minDevices: 10 }], start: true });
  await until(async () => (await c.call('GET', `/v1/rollouts/${ro.id}`)).json().waves[0].responded === 4, 5000, 'four answers');

  const { page } = await c.page();
  await c.signIn(page, 'viewer');
  await page.getByRole('link', { name: 'Stuck devices' }).first().click();
  await page.getByLabel('Rollout').selectOption(ro.id);
  await page.getByRole('button', { name: 'Show stuck devices' }).click();
  const rows = page.locator('table.stuck tbody tr');
  await rows.first().waitFor();
  const shown = await rows.evaluateAll((trs) => trs.map((tr) => [tr.cells[0].textContent, tr.querySelector('.stuck-reason')!.getAttribute('data-reason'), tr.cells[5].textContent]));
  t.same(shown, [
    ['th-0000', 'never_connected', 'never connected never_connected'],
    ['th-0001', 'rejected:apply_failed', 'rejected: apply failed rejected:apply_failed'],
  ]);
  await page.screenshot({ path: join(screenshots, 'stuck-list.png'), fullPage: true });

  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download CSV' }).click()]);
  t.equal(download.suggestedFilename(), `stuck-rollout-${ro.id}.csv`);
  const csv = readFileSync(await download.path(), 'utf8').trim().split('\r\n');
  t.equal(csv[0], 'id,group,model,seq,bundle,targetSeq,reason,since,connected');
  t.same(
    csv.slice(1).map((l) => l.split(',')),
    [
      ['th-0000', 'thermostats', 'th-100', '', '', '1', 'never_connected', '2026-01-01T00:00:00.000Z', 'false'],
      ['th-0001', 'thermostats', 'th-100', '0', '', '1', 'rejected:apply_failed', '2026-01-01T00:00:00.000Z', 'true'],
    ],
    'the CSV has the rows the page shows',
  );
});

t.test('a viewer sees no action buttons, and the API refuses the action anyway', async (t) => {
  const c = await consoleHarness(t, browser);
  await fleet(c, 3);
  const { rollout: ro } = await rollout(c, { waves: [{ size: '100%' }], start: true });
  const { page } = await c.page();
  await c.signIn(page, 'viewer');
  await page.goto(`${c.base}/ui#/rollouts/${ro.id}`);
  await page.locator('.wave .bar').waitFor();
  t.equal(await page.locator('#ro-actions button').count(), 0, 'no actions for a viewer');
  t.equal(await page.locator('main button').count(), 0);
  const refused = await page.evaluate(async (id) => {
    const me = await (await fetch('/ui/session')).json();
    const r = await fetch(`/v1/rollouts/${id}/pause`, { method: 'POST', headers: { 'x-pinwave-csrf': me.csrf, 'content-type': 'application/json' }, body: '{}' });
    return { status: r.status, body: await r.json() };
  }, ro.id);
  t.match(refused, { status: 403, body: { code: 'PW_FORBIDDEN', message: 'this needs the operator role; token "vera" has viewer' } });
  t.equal((await c.call('GET', `/v1/rollouts/${ro.id}`)).json().state, 'running');
});

t.test('a link to a rollout that does not exist, or a prefix too short, says so; a malformed link is an error page, not another page', async (t) => {
  const c = await consoleHarness(t, browser);
  await fleet(c, 3);
  await rollout(c, { waves: [{ size: '100%' }] });
  const { page } = await c.page();
  const thrown: string[] = [];
  page.on('pageerror', (e) => thrown.push(String(e)));
  await c.signIn(page, 'viewer');
  await page.goto(`${c.base}/ui#/rollouts/r-thermostats-9-nothere`);
  await page.getByRole('heading', { name: 'Not found', level: 1 }).waitFor();
  t.match(await page.locator('main .error').textContent(), /no rollout "r-thermostats-9-nothere"\s*PW_NOT_FOUND/);
  // A hash change keeps the page: each wait is for its own alert, not the one before it.
  await page.goto(`${c.base}/ui#/rollouts/r-therm`);
  await page.getByRole('alert').filter({ hasText: 'neither a rollout id' }).waitFor();
  t.match(await page.locator('main .error').textContent(), /neither a rollout id nor a prefix of at least 8 characters/);
  await page.goto(`${c.base}/ui#/devices/%ZZ`);
  await page.getByRole('alert').filter({ hasText: 'must match pattern' }).waitFor();
  t.match(await page.locator('main .error').textContent(), /params\/id must match pattern/);
  t.same(thrown, [], 'no uncaught error');
});

t.test('a link whose id is dots, empty or too long, or whose query is odd, is a Bad link page and asks the API for no other path', async (t) => {
  const c = await consoleHarness(t, browser);
  await fleet(c, 3);
  const { page } = await c.page();
  const thrown: string[] = [];
  page.on('pageerror', (e) => thrown.push(String(e)));
  await c.signIn(page, 'viewer');
  let asked: string[] = [];
  page.on('request', (r) => asked.push(new URL(r.url()).pathname));
  const bad: Array<[string, RegExp]> = [
    ['#/devices/..', /^"\.\." is not a device id: no id is only dots\.$/],
    ['#/devices/%2e%2e', /^"\.\." is not a device id/],
    ['#/rollouts/..', /^"\.\." is not a rollout id/],
    ['#/bundles/%2E%2E', /^"\.\." is not a bundle id/],
    ['#/devices/', /^This link names no device\.$/],
    [`#/devices/${'x'.repeat(600)}`, /^The device id in this link is 600 characters long: no id is longer than 160\.$/],
    ['#/stuck?group=thermostats&rollout=r-x', /^Stuck devices are of a group or of a rollout: the link gives both\.$/],
    ['#/stuck?grup=thermostats', /^"grup" is not a parameter of this page/],
    ['#/stuck?group=', /^The parameter "group" is empty\.$/],
  ];
  for (const [hash, message] of bad) {
    asked = [];
    await page.goto(`${c.base}/ui${hash}`);
    // A hash change keeps the page: the last link's Bad link page is still up until this one is drawn.
    await page.getByRole('alert').filter({ hasText: message }).waitFor();
    await page.getByRole('heading', { name: 'Bad link', level: 1 }).waitFor();
    t.match(await page.getByRole('alert').textContent(), message, `${hash.slice(0, 40)}: says why`);
    t.same(asked.filter((p) => p.startsWith('/v1/')), [], `${hash.slice(0, 40)}: nothing asked of the API`);
    t.equal(await page.title(), 'Bad link — pinwave');
  }
  // A value the link may carry but the API refuses: the API's answer, on a Bad link page.
  asked = [];
  await page.goto(`${c.base}/ui#/stuck?group=%3Cb%3E`);
  await page.getByRole('alert').filter({ hasText: /querystring\/group must match pattern/ }).waitFor();
  await page.getByRole('heading', { name: 'Bad link', level: 1 }).waitFor();
  t.match(await page.getByRole('alert').textContent(), /querystring\/group must match pattern.*PW_INVALID/);
  t.ok(asked.includes('/v1/stuck'), 'the stuck query was asked');
  t.ok(asked.filter((p) => p.startsWith('/v1/')).every((p) => ['/v1/groups', '/v1/rollouts', '/v1/stuck'].includes(p)), `and nothing else: ${asked.join(', ')}`);
  await page.getByRole('link', { name: 'Stuck devices' }).click();
  await page.getByRole('heading', { name: 'Stuck devices', level: 1 }).waitFor();
  t.same(thrown, [], 'no uncaught error');
});

t.test('sign-out ends the session on the server: the cookie no longer works; a revoked token ends a session and its live page', async (t) => {
  const c = await consoleHarness(t, browser);
  await fleet(c, 3);
  const { rollout: ro } = await rollout(c, { waves: [{ size: '100%' }], start: true });
  const { context, page } = await c.page();
  await c.signIn(page, 'operator');
  const [cookie] = await context.cookies();
  const replay = () => fetch(`${c.base}/v1/rollouts`, { headers: { cookie: `${cookie.name}=${cookie.value}` } });
  t.equal((await replay()).status, 200, 'the cookie works while signed in');
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByText('You are signed out.').waitFor();
  t.same(await context.cookies(), [], 'the browser dropped the cookie');
  t.equal((await replay()).status, 401, 'and the server ended the session: the old cookie is refused');

  // A revoked token: the admin reloads the tokens without it; the session and its event stream end.
  const second = await c.page();
  await c.signIn(second.page, 'admin');
  await second.page.goto(`${c.base}/ui#/rollouts/${ro.id}`);
  await second.page.getByText('Live: updates as devices answer').waitFor();
  t.equal(c.app.rolloutStreams.open, 1);
  c.app.apiTokens.replace((await import('../../../fixtures/http.ts')).API_TOKENS.filter((x) => x.role !== 'admin'));
  await second.page.getByText('Your session has ended: sign in again.').waitFor();
  t.equal(c.app.rolloutStreams.open, 0, 'its event stream closed');
});

t.test('the keyboard and the links: skip to content, then fleet → group → device → bundle', async (t) => {
  const c = await consoleHarness(t, browser);
  const sims = await fleet(c, 3);
  await connectAll(t, sims);
  const { bundle, rollout: ro } = await rollout(c, { waves: [{ size: '100%', minDevices: 1 }], start: true });
  await until(async () => (c.gw.tick(), (await c.gw.listRollouts())[0].state === 'completed'), 5000, 'completion');
  const { page } = await c.page();
  await c.signIn(page, 'viewer');
  await page.goto(`${c.base}/ui`);
  await page.locator('.group').waitFor();
  await page.keyboard.press('Tab');
  t.equal(await page.evaluate(() => document.activeElement?.textContent), 'Skip to content', 'the first Tab stop skips the navigation');
  t.ok(await page.evaluate(() => getComputedStyle(document.activeElement!).outlineStyle !== 'none'), 'focus is visible');
  await page.keyboard.press('Enter');
  t.equal(await page.evaluate(() => document.activeElement?.id), 'main');
  t.match(await page.locator('.group').textContent(), new RegExp(`Baseline\\s*seq 1 \\(${bundle.id.slice(0, 12)}\\)`));

  await page.locator('.group h2 a', { hasText: 'thermostats' }).click();
  await page.getByRole('heading', { name: 'Group thermostats' }).waitFor();
  t.equal(await page.locator('#devices tbody tr').count(), 3);
  await page.getByRole('link', { name: 'th-0001' }).click();
  await page.getByRole('heading', { name: /Device th-0001/ }).waitFor();
  t.match(await page.locator('#history').textContent(), new RegExp(`applied\\s*seq 1\\s*${ro.id}`));
  await page.locator('main .facts a', { hasText: bundle.id.slice(0, 12) }).click();
  await page.getByRole('heading', { name: /Bundle .* thermostats, seq 1/ }).waitFor();
  t.match(await page.locator('#endpoints').textContent(), 'api.example.com:443');
  t.match(await page.locator('#endpoints').textContent(), pin('new'));
  await page.goBack();
  await page.getByRole('heading', { name: /Device th-0001/ }).waitFor();
  t.pass('the browser\'s back button goes back a page');
});

t.test('on a narrow window (400 px) the rollout page reads without scrolling sideways', async (t) => {
  const c = await consoleHarness(t, browser);
  await fleet(c, 12);
  const { rollout: ro } = await rollout(c, { waves: [{ size: 2 }, { size: '50%' }, { size: '100%' }], start: true });
  const { page } = await c.page({ width: 400, height: 800 });
  await c.signIn(page, 'operator');
  await page.goto(`${c.base}/ui#/rollouts/${ro.id}`);
  await page.locator('.wave[data-wave="3"] .bar').waitFor();
  t.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'no sideways scroll');
  t.equal(await page.locator('.wave h3').allTextContents().then((x) => x.join('|')), 'Wave 1 of 3|Wave 2 of 3|Wave 3 of 3');
  await page.screenshot({ path: join(screenshots, 'rollout-narrow.png'), fullPage: true });
  await page.goto(`${c.base}/ui#/`);
  await page.locator('.group').waitFor();
  t.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'the fleet page neither');
});

t.teardown(() => {
  // The README shows these two: copy them there when asked (PINWAVE_SCREENSHOTS_TO_DOCS=1).
  if (process.env.PINWAVE_SCREENSHOTS_TO_DOCS !== '1') return;
  for (const f of ['rollout-held.png', 'stuck-list.png']) copyFileSync(join(screenshots, f), join(import.meta.dirname, '../../../../docs/images', f));
});
