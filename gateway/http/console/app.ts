// The console's entry module (browser only): sign-in, the page router (`#/rollouts/ID` and so on, read by links.ts:
// the route lives in the fragment, so nothing of it reaches a server log), each page's data loading,
// the rollout page's live updates over server-sent events, the confirmation dialogs, the CSV
// download. What each page shows is the render-*.ts files'; this file only fetches and wires.
import { ApiError, get, getText, onSignedOut, send, setSession, stream } from './api.ts';
import { count } from './format.ts';
import { readLink } from './links.ts';
import { enc, link } from './parts.ts';
import { bundlesTable, bundleView } from './render-bundle.ts';
import { devicesTable, deviceView, fleetView } from './render-fleet.ts';
import { actionBody, actionDialog, actionsBar, decisionsTimeline, dialogForm, heldPanel, pinFailuresTable, rolloutHeader, rolloutsTable, wavesSection, type ActionDialog, type ActionVerb } from './render-rollout.ts';
import { stuckCsvName, stuckFilterForm, stuckTable, type StuckFilter } from './render-support.ts';
import type { Bundle, BundleDetail, Device, DeviceDetail, Group, Me, Page, PinFailure, Rollout, StuckDevice } from './types.ts';
import { h, replace, toDom, type VNode } from './view.ts';

const main = document.getElementById('main')!;
const nav = document.getElementById('nav')!;
const who = document.getElementById('who')!;
const live = document.getElementById('live')!;

let me: Me | null = null;
/** what the page on screen must stop (an event stream, a timer) when another replaces it */
let cleanup: (() => void) | null = null;
/** bumped on every navigation: a page whose data arrives after the reader left does not draw */
let generation = 0;

const announce = (text: string) => (live.textContent = text);

function stop(): void {
  cleanup?.();
  cleanup = null;
}

/** Draws a page, unless the reader has moved on since it started loading. */
function draw(gen: number, title: string, ...nodes: Array<VNode | string>): boolean {
  if (gen !== generation) return false;
  document.title = `${title} — pinwave`;
  replace(main, ...nodes);
  return true;
}

// ---------------------------------------------------------------- chrome and sign-in

const NAV: Array<[string, string, string]> = [
  ['fleet', '/', 'Fleet'],
  ['rollouts', '/rollouts', 'Rollouts'],
  ['stuck', '/stuck', 'Stuck devices'],
  ['bundles', '/bundles', 'Bundles'],
];

function chrome(section: string | null): void {
  replace(nav, me ? h('ul', null, NAV.map(([key, route, text]) => h('li', null, h('a', { href: `#${route}`, 'aria-current': key === section ? 'page' : null }, text)))) : '');
  replace(
    who,
    me
      ? h('span', null, h('span', { class: 'me', id: 'me' }, me.name, ' ', h('span', { class: 'role' }, me.role)), ' ', h('button', { type: 'button', id: 'sign-out', onclick: () => void signOut() }, 'Sign out'))
      : '',
  );
}

function showSignIn(message?: string): void {
  stop();
  generation++;
  me = null;
  setSession(null);
  chrome(null);
  document.title = 'Sign in — pinwave';
  const onsubmit = async (e: Event) => {
    e.preventDefault();
    const form = e.target as HTMLFormElement;
    const input = form.elements.namedItem('token') as HTMLInputElement;
    const error = document.getElementById('signin-error')!;
    const button = form.querySelector('button')!;
    button.disabled = true;
    error.textContent = '';
    try {
      const session = await send<Me>('POST', '/ui/session', { token: input.value });
      input.value = '';
      signedIn(session!);
    } catch (err) {
      error.textContent = err instanceof ApiError && err.status === 401 ? 'That token is not valid.' : (err as Error).message;
      button.disabled = false;
      input.focus();
    }
  };
  replace(
    main,
    h(
      'div',
      { class: 'signin' },
      h('h1', null, 'Sign in'),
      message ? h('p', { class: 'notice', role: 'status' }, message) : null,
      h('p', null, 'Sign in with your API token. It is exchanged for a session of this browser tab’s site: the token itself is not kept here, and the session ends when you sign out, after an hour without use, or when the token is revoked.'),
      // method=post: without the script, the browser would still post the token, never put it in a URL.
      h(
        'form',
        { method: 'post', action: '/ui/session', id: 'signin', onsubmit },
        h('div', { class: 'field' }, h('label', { for: 'token' }, 'API token'), h('input', { id: 'token', name: 'token', type: 'password', autocomplete: 'off', spellcheck: 'false', required: true, 'aria-describedby': 'signin-error' })),
        h('p', { class: 'error', id: 'signin-error', role: 'alert' }),
        h('button', { type: 'submit', class: 'primary', id: 'signin-submit' }, 'Sign in'),
      ),
    ),
  );
  (document.getElementById('token') as HTMLInputElement | null)?.focus();
}

function signedIn(session: Me): void {
  me = session;
  setSession(session);
  void route();
}

async function signOut(): Promise<void> {
  try {
    await send('DELETE', '/ui/session');
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401)) throw err;
  }
  showSignIn('You are signed out.');
}

// ---------------------------------------------------------------- router

async function route(): Promise<void> {
  if (!me) return showSignIn();
  stop();
  const gen = ++generation;
  const r = readLink(location.hash);
  chrome(r.page === 'group' || r.page === 'device' ? 'fleet' : r.page === 'rollout' ? 'rollouts' : r.page === 'bundle' ? 'bundles' : r.page);
  try {
    switch (r.page) {
      case 'fleet':
        return await fleetPage(gen);
      case 'group':
        return await groupPage(gen, r.group, r.seq, r.model);
      case 'device':
        return await devicePage(gen, r.id);
      case 'rollouts':
        return await rolloutsPage(gen);
      case 'rollout':
        return await rolloutPage(gen, r.id);
      case 'stuck':
        return await stuckPage(gen, r.group !== null ? { group: r.group } : r.rollout !== null ? { rollout: r.rollout } : {});
      case 'bundles':
        return await bundlesPage(gen, r.group);
      case 'bundle':
        return await bundlePage(gen, r.id);
      case 'bad_link':
        // Nothing was asked of the API: the link itself is wrong (links.ts).
        draw(gen, 'Bad link', h('h1', null, 'Bad link'), h('p', { class: 'error', role: 'alert' }, r.message), h('p', null, link('/', 'Back to the fleet')));
        return;
      case 'not_found':
        draw(gen, 'Not found', h('h1', null, 'Not found'), h('p', null, 'There is no such page. ', link('/', 'Back to the fleet')));
    }
  } catch (err) {
    drawError(gen, err);
  }
}

/** A page that failed to load: the API's message and code (a 401 has shown sign-in already). A 400 is the link's values, which the API judged. */
function drawError(gen: number, err: unknown): void {
  if (err instanceof ApiError && err.status === 401) return;
  const status = err instanceof ApiError ? err.status : 0;
  draw(gen, 'Error', h('h1', null, status === 404 ? 'Not found' : status === 400 ? 'Bad link' : 'Something went wrong'), h('p', { class: 'error', role: 'alert' }, (err as Error).message, err instanceof ApiError ? [' ', h('code', null, err.code)] : ''));
}

/** A list the API gives in pages, with a "Show more" button while there are more. */
async function paged<T>(gen: number, holder: Element, url: (cursor: string | null) => string, table: (items: T[]) => VNode): Promise<void> {
  let items: T[] = [];
  let next: string | null = null;
  const load = async (cursor: string | null) => {
    const p = await get<Page<T>>(url(cursor));
    if (gen !== generation) return;
    items = items.concat(p.items);
    next = p.next;
    replace(holder, table(items), next ? h('button', { type: 'button', class: 'more', id: 'more', onclick: () => void load(next) }, `Show more (${count(items.length)} shown)`) : '');
  };
  await load(null);
}

const withCursor = (base: string, cursor: string | null) => (cursor === null ? base : `${base}${base.includes('?') ? '&' : '?'}cursor=${enc(cursor)}`);

// ---------------------------------------------------------------- pages

async function fleetPage(gen: number): Promise<void> {
  const groups = await get<Page<Group>>('/v1/groups?limit=1000');
  draw(gen, 'Fleet', fleetView(groups.items));
}

async function groupPage(gen: number, group: string, seq: string | null, model: string | null): Promise<void> {
  const filter = [seq !== null ? `seq=${enc(seq)}` : '', model !== null ? `model=${enc(model)}` : ''].filter(Boolean).join('&');
  const what = [seq !== null ? (seq === 'none' ? 'that never reported a seq' : `on seq ${seq}`) : '', model !== null ? `of model ${model}` : ''].filter(Boolean).join(' and ');
  if (!draw(gen, `Group ${group}`, h('h1', null, 'Group ', h('code', null, group)), h('p', null, link('/', '← Fleet'), what ? [' · ', link(`/groups/${enc(group)}`, 'all its devices')] : ''), h('div', { id: 'devices' }))) return;
  const base = `/v1/devices?group=${enc(group)}&limit=100${filter ? `&${filter}` : ''}`;
  await paged<Device>(gen, document.getElementById('devices')!, (c) => withCursor(base, c), (items) => devicesTable(`Devices of ${group}${what ? ` ${what}` : ''}`, items));
}

async function devicePage(gen: number, id: string): Promise<void> {
  const d = await get<DeviceDetail>(`/v1/devices/${enc(id)}`);
  draw(gen, `Device ${id}`, deviceView(d));
}

async function rolloutsPage(gen: number): Promise<void> {
  if (!draw(gen, 'Rollouts', h('h1', null, 'Rollouts'), h('div', { id: 'rollouts' }))) return;
  await paged<Rollout>(gen, document.getElementById('rollouts')!, (c) => withCursor('/v1/rollouts?limit=100', c), rolloutsTable);
}

async function rolloutPage(gen: number, id: string): Promise<void> {
  const slots = ['ro-head', 'ro-live', 'ro-held', 'ro-actions', 'ro-waves', 'ro-failures', 'ro-decisions'];
  if (!draw(gen, `Rollout ${id}`, h('div', { class: 'rollout' }, slots.map((s) => h('div', { id: s }))))) return;
  const el = (s: string) => document.getElementById(s)!;
  replace(el('ro-head'), h('h1', null, 'Rollout ', h('code', null, id)), h('p', { class: 'loading' }, 'Connecting…'));
  let shown: Rollout | null = null;
  let failuresKey = '';
  let failuresTimer: number | null = null;

  const setLive = (state: 'live' | 'reconnecting' | 'closed') => {
    const words = { live: 'Live: updates as devices answer', reconnecting: 'Reconnecting…', closed: 'Not live: reload the page' };
    replace(el('ro-live'), h('p', { class: `live-status live-${state}` }, h('span', { class: 'dot', 'aria-hidden': 'true' }), ' ', words[state]));
  };
  const loadFailures = async () => {
    const p = await get<Page<PinFailure>>(`/v1/telemetry/pin-failures?rollout=${enc(id)}&limit=100`);
    if (gen === generation) replace(el('ro-failures'), pinFailuresTable(p.items));
  };
  const onAction = (verb: ActionVerb) => {
    if (shown) openDialog(actionDialog(verb, shown), (body) => act(id, verb, body));
  };
  const update = (r: Rollout) => {
    if (gen !== generation) return;
    const before = shown;
    shown = r;
    document.title = `Rollout ${r.id} (${r.state}) — pinwave`;
    replace(el('ro-head'), rolloutHeader(r));
    replace(el('ro-held'), heldPanel(r) ?? '');
    replace(el('ro-actions'), actionsBar(r, me!.role, onAction, me!.name) ?? '');
    replace(el('ro-waves'), wavesSection(r));
    replace(el('ro-decisions'), decisionsTimeline(r));
    if (before && before.state !== r.state) announce(`Rollout ${r.id} is now ${r.state}.`);
    // Pin failures are another resource: fetched again when the rollout's failures move.
    const key = `${r.state}|${r.waves.map((w) => `${w.failing}/${w.rejected}`).join(',')}`;
    if (key !== failuresKey) {
      failuresKey = key;
      void loadFailures().catch(() => {});
    }
  };
  const s = stream(`/v1/rollouts/${enc(id)}/events`, {
    event: (_type, data) => update(data as Rollout),
    status: (ok) => setLive(ok ? 'live' : 'reconnecting'),
    closed: () => {
      setLive('closed');
      // Closed for good: the session may have ended (then sign-in shows), or the link names no
      // rollout (a mistyped id, a prefix too short or of several): the API's answer says which. A
      // gateway out of reach leaves the page as it was, marked not live.
      void get<Rollout>(`/v1/rollouts/${enc(id)}`).catch((err) => {
        if (err instanceof ApiError) drawError(gen, err);
      });
    },
  });
  failuresTimer = window.setInterval(() => void loadFailures().catch(() => {}), 15_000);
  cleanup = () => {
    s.close();
    if (failuresTimer !== null) clearInterval(failuresTimer);
  };
}

async function act(id: string, verb: ActionVerb, body: Record<string, unknown> | null): Promise<void> {
  if (verb === 'rollback') {
    const r = await send<{ rollback: Rollout }>('POST', `/v1/rollouts/${enc(id)}/rollback`, body ?? {});
    announce(`Rolled back: rollout ${r!.rollback.id} sends the previous pins.`);
    location.hash = `#/rollouts/${enc(r!.rollback.id)}`;
    return;
  }
  await send<Rollout>('POST', `/v1/rollouts/${enc(id)}/${verb}`, body ?? {});
  announce(`${verb[0].toUpperCase()}${verb.slice(1)}: done.`);
}

async function stuckPage(gen: number, filter: StuckFilter): Promise<void> {
  const [groups, rollouts] = await Promise.all([get<Page<Group>>('/v1/groups?limit=1000'), get<Page<Rollout>>('/v1/rollouts?limit=1000')]);
  const onsubmit = (e: Event) => {
    e.preventDefault();
    const form = e.target as HTMLFormElement;
    const g = (form.elements.namedItem('group') as HTMLSelectElement).value;
    const r = (form.elements.namedItem('rollout') as HTMLSelectElement).value;
    location.hash = r ? `#/stuck?rollout=${enc(r)}` : g ? `#/stuck?group=${enc(g)}` : '#/stuck';
  };
  const what = filter.group !== undefined ? `group ${filter.group}` : filter.rollout !== undefined ? `rollout ${filter.rollout}` : null;
  const query_ = filter.group !== undefined ? `group=${enc(filter.group)}` : filter.rollout !== undefined ? `rollout=${enc(filter.rollout)}` : '';
  const form = stuckFilterForm(groups.items, rollouts.items, filter, onsubmit);
  const download = what
    ? h('button', { type: 'button', id: 'csv', onclick: () => void downloadCsv(query_, filter) }, 'Download CSV')
    : null;
  if (!draw(gen, 'Stuck devices', h('h1', null, 'Stuck devices'), h('p', null, 'Devices not on the pins they should hold, each with the reason. Choose a group or a rollout.'), form, download ?? '', h('div', { id: 'stuck' }))) return;
  // Choosing one filter clears the other, so the form always says what the list is of.
  const g = document.getElementById('stuck-group') as HTMLSelectElement;
  const r = document.getElementById('stuck-rollout') as HTMLSelectElement;
  g.addEventListener('change', () => g.value && (r.value = ''));
  r.addEventListener('change', () => r.value && (g.value = ''));
  if (!what) return;
  await paged<StuckDevice>(gen, document.getElementById('stuck')!, (c) => withCursor(`/v1/stuck?${query_}&limit=500`, c), (items) => stuckTable(what, items));
}

async function downloadCsv(query: string, filter: StuckFilter): Promise<void> {
  const text = await getText(`/v1/stuck?${query}`, 'text/csv');
  const url = URL.createObjectURL(new Blob([text], { type: 'text/csv' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = stuckCsvName(filter);
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
  announce(`Downloaded ${a.download}.`);
}

async function bundlesPage(gen: number, group: string | null): Promise<void> {
  if (!draw(gen, 'Bundles', h('h1', null, 'Bundles', group ? [' of ', h('code', null, group)] : ''), h('div', { id: 'bundles' }))) return;
  const base = `/v1/bundles?limit=100${group ? `&group=${enc(group)}` : ''}`;
  await paged<Bundle>(gen, document.getElementById('bundles')!, (c) => withCursor(base, c), bundlesTable);
}

async function bundlePage(gen: number, id: string): Promise<void> {
  const b = await get<BundleDetail>(`/v1/bundles/${enc(id)}`);
  draw(gen, `Bundle ${id.slice(0, 12)}`, bundleView(b));
}

// ---------------------------------------------------------------- dialogs

const FOCUSABLE = 'button:not([disabled]), input:not([disabled]), select:not([disabled]), textarea:not([disabled]), a[href]';

/**
 * A modal confirmation dialog: the rest of the page is inert while it is open, Tab and Shift+Tab
 * stay inside it, Escape or Cancel closes it doing nothing, and focus goes back where it was.
 */
function openDialog(d: ActionDialog, run: (body: Record<string, unknown> | null) => Promise<void>): void {
  const dialog = document.createElement('dialog');
  dialog.className = `confirm${d.danger ? ' danger' : ''}`;
  dialog.id = 'dialog';
  dialog.setAttribute('aria-labelledby', 'dialog-title');
  dialog.setAttribute('aria-describedby', 'dialog-desc');
  dialog.append(toDom(dialogForm(d)));
  document.body.append(dialog);
  const opener = document.activeElement as HTMLElement | null;
  const form = dialog.querySelector('form')!;
  const error = dialog.querySelector('#dialog-error')!;
  const confirm = dialog.querySelector<HTMLButtonElement>('#dialog-confirm')!;
  dialog.addEventListener('close', () => {
    dialog.remove();
    if (opener && document.contains(opener)) opener.focus();
    else document.getElementById(opener?.id ?? '')?.focus();
  });
  dialog.querySelector('#dialog-cancel')!.addEventListener('click', () => dialog.close());
  dialog.addEventListener('keydown', (e) => {
    if (e.key !== 'Tab') return;
    const items = [...dialog.querySelectorAll<HTMLElement>(FOCUSABLE)];
    const first = items[0];
    const last = items[items.length - 1];
    if (e.shiftKey && document.activeElement === first) (e.preventDefault(), last.focus());
    else if (!e.shiftKey && document.activeElement === last) (e.preventDefault(), first.focus());
  });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.textContent = '';
    const values: Record<string, string> = {};
    for (const [k, v] of new FormData(form)) values[k] = String(v);
    let body: Record<string, unknown> | null;
    try {
      body = actionBody(d, values);
    } catch (err) {
      error.textContent = (err as Error).message;
      return;
    }
    confirm.disabled = true;
    try {
      await run(body);
      dialog.close();
    } catch (err) {
      error.textContent = err instanceof ApiError ? `${err.message} (${err.code})` : (err as Error).message;
      confirm.disabled = false;
    }
  });
  dialog.showModal();
  // A destructive action starts on Cancel; another on its first field, or its button.
  const start = d.danger ? dialog.querySelector<HTMLElement>('#dialog-cancel') : (dialog.querySelector<HTMLElement>('input') ?? confirm);
  start?.focus();
}

// ---------------------------------------------------------------- start

async function boot(): Promise<void> {
  onSignedOut(() => {
    if (me) showSignIn('Your session has ended: sign in again.');
  });
  document.getElementById('skip')!.addEventListener('click', (e) => {
    e.preventDefault();
    main.focus();
  });
  window.addEventListener('hashchange', () => {
    void route().then(() => main.focus({ preventScroll: true }));
  });
  try {
    const session = await get<Me>('/ui/session');
    signedIn(session);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) showSignIn();
    else replace(main, h('h1', null, 'The console cannot reach the gateway'), h('p', { class: 'error', role: 'alert' }, (err as Error).message));
  }
}

void boot();
