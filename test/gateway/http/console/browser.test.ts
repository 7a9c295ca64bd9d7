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
