// The operator console's page and assets (docs/architecture.md §10), served from the package itself:
// nothing is fetched from anywhere else, so it works with no internet. `GET /ui` is one HTML page;
// its scripts are the ES modules `tsc -p tsconfig.console.json` builds from gateway/http/console/
// into dist/console/ (npm ci's prepare step), its style is gateway/http/console/console.css. The
// page signs in by itself (session-routes.ts) and reads everything else from the /v1 API, so the
// page and its assets are public and hold no data.
//
// Assets are read once, on the first request, with a gzip form and an ETag each; answers say
// `no-cache` (revalidate, 304 when unchanged), and the page carries a CSP that allows scripts,
// styles and connections to this origin only, no inline script, no framing.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { errorBody, sendError } from './errors.ts';
import { packageRoot } from './info.ts';
import { ignoredQuery } from './schemas.ts';

export interface ConsoleRoutesOptions {
  /** the package folder holding dist/console/ and gateway/http/console/; default the one this file is in */
  root?: string;
}

interface Asset {
  type: string;
  body: Buffer;
  gzip: Buffer;
  etag: string;
}

export const CONSOLE_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/** The entry module; the others are what it imports. */
const ENTRY = 'app.js';
const NAME_RE = /^[a-z0-9-]{1,64}\.(js|css)$/;

function asset(type: string, body: Buffer): Asset {
  return { type, body, gzip: gzipSync(body, { level: 9 }), etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` };
}

/** Reads the built scripts and the style; null when the scripts were never built. */
export function loadAssets(root: string): Map<string, Asset> | null {
  const out = new Map<string, Asset>();
  let names: string[];
  try {
    names = readdirSync(join(root, 'dist', 'console')).filter((n) => NAME_RE.test(n) && n.endsWith('.js'));
  } catch {
    return null;
  }
  if (!names.includes(ENTRY)) return null;
  for (const n of names.sort()) {
    const body = readFileSync(join(root, 'dist', 'console', n));
    // A module of types only compiles to `export {};`: nothing imports it at run time.
    if (body.toString('utf8').trim() === 'export {};') continue;
    out.set(n, asset('text/javascript; charset=utf-8', body));
  }
  out.set('console.css', asset('text/css; charset=utf-8', readFileSync(join(root, 'gateway', 'http', 'console', 'console.css'))));
  return out;
}

/** The page: a shell the entry module fills. Every module is preloaded, so the browser fetches them at once rather than import by import. */
export function consolePage(assets: Map<string, Asset>): string {
  const modules = [...assets.keys()].filter((n) => n.endsWith('.js'));
  return [
    '<!doctype html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    '<meta name="referrer" content="no-referrer">',
    '<title>pinwave console</title>',
    '<link rel="stylesheet" href="/ui/assets/console.css">',
    ...modules.map((n) => `<link rel="modulepreload" href="/ui/assets/${n}">`),
    `<script type="module" src="/ui/assets/${ENTRY}"></script>`,
    '</head>',
    '<body>',
    '<a class="skip" href="#main" id="skip">Skip to content</a>',
    '<header class="top"><span class="brand">pinwave</span><nav id="nav" aria-label="Console"></nav><div id="who" class="who"></div></header>',
    '<main id="main" tabindex="-1"><p class="loading">Loading the console…</p><noscript><p>The console needs JavaScript. The same data is in the API: see <a href="/docs">/docs</a>.</p></noscript></main>',
    '<div id="live" class="visually-hidden" aria-live="polite"></div>',
    '</body>',
    '</html>',
    '',
  ].join('\n');
}

const wantsGzip = (request: FastifyRequest) => /\bgzip\b/.test(String(request.headers['accept-encoding'] ?? ''));

function send(request: FastifyRequest, reply: FastifyReply, a: Asset): FastifyReply {
  reply.header('etag', a.etag).header('cache-control', 'no-cache').header('vary', 'Accept-Encoding').header('x-content-type-options', 'nosniff').type(a.type);
  if (request.headers['if-none-match'] === a.etag) return reply.code(304).send();
  if (wantsGzip(request)) return reply.header('content-encoding', 'gzip').send(a.gzip);
  return reply.send(a.body);
}

export async function consoleRoutes(app: FastifyInstance, o: ConsoleRoutesOptions): Promise<void> {
  const root = o.root ?? packageRoot()?.dir ?? process.cwd();
  let loaded: { assets: Map<string, Asset>; page: Asset } | null = null;
  const load = () => {
    if (loaded) return loaded;
    const assets = loadAssets(root);
    if (assets === null) return null;
    loaded = { assets, page: asset('text/html; charset=utf-8', Buffer.from(consolePage(assets))) };
    return loaded;
  };
  const notBuilt = (reply: FastifyReply) =>
    sendError(reply, errorBody(503, 'PW_CONSOLE_NOT_BUILT', `the console's scripts are not built (no ${join(root, 'dist', 'console', ENTRY)}): run npm run build`));

  const page = async (request: FastifyRequest, reply: FastifyReply) => {
    const l = load();
    if (!l) return notBuilt(reply);
    reply.header('content-security-policy', CONSOLE_CSP).header('x-frame-options', 'DENY').header('referrer-policy', 'no-referrer');
    return send(request, reply, l.page);
  };
  const html = { description: 'the console page', content: { 'text/html': { schema: { type: 'string' } } } };
  app.get('/ui', { config: { public: true }, schema: { tags: ['console'], summary: 'The operator console (sign in with an API token)', querystring: ignoredQuery, response: { 200: html } } }, page);
  app.get('/ui/', { config: { public: true }, schema: { tags: ['console'], summary: 'The operator console', querystring: ignoredQuery, response: { 200: html } } }, page);

  app.get<{ Params: { name: string } }>(
    '/ui/assets/:name',
    {
      config: { public: true },
      schema: {
        tags: ['console'],
        summary: "The console's scripts and style",
        params: { type: 'object', additionalProperties: false, required: ['name'], properties: { name: { type: 'string', maxLength: 70, pattern: NAME_RE.source } } },
        querystring: ignoredQuery,
        response: { 200: { description: 'a script or the style', content: { 'text/javascript': { schema: { type: 'string' } }, 'text/css': { schema: { type: 'string' } } } } },
      },
    },
    async (request, reply) => {
      const l = load();
      if (!l) return notBuilt(reply);
      const a = l.assets.get(request.params.name);
      if (!a) return sendError(reply, errorBody(404, 'PW_NOT_FOUND', `no console asset ${request.params.name}`));
      return send(request, reply, a);
    },
  );
}
