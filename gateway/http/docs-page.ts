// The API reference as a page for people: the OpenAPI document (docs.ts) rendered on the server
// into one self-contained HTML page: every operation by tag with who may call it, its parameters,
// request body and responses, and every shared schema, each field with its type, limits and
// description. No script and nothing fetched: it works offline and under a CSP that allows only
// its own inline style (by hash). Pure: a document in, a page out.
//
//   const page = renderDocsPage(app.swagger());   // { html, csp }
//
// Everything from the document is escaped: descriptions are ours, but a page must not depend on it.
import { createHash } from 'node:crypto';

/** The parts of an OpenAPI 3.1 document the page reads. */
export interface OpenApiDocument {
  openapi: string;
  info: { title: string; version: string; description?: string };
  tags?: Array<{ name: string; description?: string }>;
  paths: Record<string, Record<string, Operation>>;
  components?: { schemas?: Record<string, Schema>; securitySchemes?: Record<string, unknown> };
}

interface Operation {
  summary?: string;
  description?: string;
  tags?: string[];
  parameters?: Array<{ name: string; in: string; required?: boolean; description?: string; schema?: Schema }>;
  requestBody?: { required?: boolean; description?: string; content?: Record<string, { schema?: Schema }> };
  responses?: Record<string, { description?: string; content?: Record<string, { schema?: Schema }> }>;
  security?: unknown[];
  'x-pinwave-access'?: string;
}

type Schema = Record<string, unknown>;

const METHODS = ['get', 'post', 'put', 'patch', 'delete'];

const esc = (v: unknown): string =>
  String(v).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/** One line of text as HTML, with its `code` spans. */
const inline = (text: string): string => esc(text).replace(/`([^`]+)`/g, '<code>$1</code>');

/** A description as HTML: paragraphs on blank lines, `code` spans. */
function prose(text: unknown): string {
  if (typeof text !== 'string' || text === '') return '';
  return text
    .split(/\n{2,}/)
    .map((p) => `<p>${inline(p)}</p>`)
    .join('');
}

const anchor = (s: string) => s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
const opId = (method: string, path: string) => `op-${method}-${anchor(path)}`;
const refName = (ref: string) => ref.replace(/^#\/components\/schemas\//, '');

/** One line for a schema's type and limits: `string, 1–64 characters, pattern ^[a-z]+$`. */
function typeLine(s: Schema): string {
  if (typeof s.$ref === 'string') {
    const name = refName(s.$ref);
    return `<a href="#schema-${esc(anchor(name))}">${esc(name)}</a>`;
  }
  for (const k of ['anyOf', 'oneOf'] as const) {
    if (Array.isArray(s[k])) return (s[k] as Schema[]).map(typeLine).join(' <em>or</em> ');
  }
  const parts: string[] = [];
  const types = ([] as unknown[]).concat(s.type ?? []).map(String);
  const nullable = types.includes('null');
  const main = types.filter((t) => t !== 'null');
  if (Array.isArray(s.enum)) parts.push(s.enum.map((v) => `<code>${esc(JSON.stringify(v))}</code>`).join(' | '));
  else if (main.includes('array') && s.items && typeof s.items === 'object') parts.push(`array of ${typeLine(s.items as Schema)}`);
  else if (main.length > 0) parts.push(esc(main.join(' or ')));
  else if (s.properties === undefined) parts.push('any');
  if (nullable) parts.push('or null');
  const range = (lo: unknown, hi: unknown, unit: string) => {
    if (lo !== undefined && hi !== undefined) return lo === hi ? `${esc(lo)} ${unit}` : `${esc(lo)}–${esc(hi)} ${unit}`;
    if (lo !== undefined) return `at least ${esc(lo)} ${unit}`;
    if (hi !== undefined) return `at most ${esc(hi)} ${unit}`;
    return '';
  };
  const limits = [
    s.minimum !== undefined ? `≥ ${esc(s.minimum)}` : '',
    s.exclusiveMinimum !== undefined ? `&gt; ${esc(s.exclusiveMinimum)}` : '',
    s.maximum !== undefined ? `≤ ${esc(s.maximum)}` : '',
    s.exclusiveMaximum !== undefined ? `&lt; ${esc(s.exclusiveMaximum)}` : '',
    range(s.minLength, s.maxLength, 'characters'),
    range(s.minItems, s.maxItems, 'items'),
    s.format !== undefined ? `format ${esc(s.format)}` : '',
    s.pattern !== undefined ? `pattern <code>${esc(s.pattern)}</code>` : '',
    s.default !== undefined ? `default <code>${esc(JSON.stringify(s.default))}</code>` : '',
  ].filter(Boolean);
  return [parts.join(' '), ...limits].join(', ');
}

/** A schema: its type line, its description, and for an object a table of its fields (nested a few levels). */
function schemaHtml(s: Schema | undefined, depth = 0): string {
  if (!s) return '';
  const props = s.properties as Record<string, Schema> | undefined;
  const head = `<div class="type">${typeLine(s)}</div>${prose(s.description)}`;
  if (!props || Object.keys(props).length === 0) return head;
  const required = new Set(Array.isArray(s.required) ? (s.required as string[]) : []);
  const rows = Object.entries(props)
    .map(([name, p]) => {
      const nested = depth < 3 && p.properties ? schemaHtml({ ...p, description: undefined }, depth + 1) : `<div class="type">${typeLine(p)}</div>`;
      const items = p.items as Schema | undefined;
      const nestedItems = depth < 3 && items?.properties ? schemaHtml({ ...items, description: undefined }, depth + 1) : '';
      return `<tr><td><code>${esc(name)}</code>${required.has(name) ? ' <span class="req">required</span>' : ''}</td><td>${nested}${nestedItems}${prose(p.description)}</td></tr>`;
    })
    .join('');
  const closed = s.additionalProperties === false ? '<p class="note">No other fields are accepted.</p>' : '';
  return `${head}<table class="fields"><tbody>${rows}</tbody></table>${closed}`;
}

function content(c: Record<string, { schema?: Schema }> | undefined): string {
  if (!c) return '';
  return Object.entries(c)
    .map(([type, { schema }]) => `<div class="media"><span class="mt">${esc(type)}</span>${schemaHtml(schema)}</div>`)
    .join('');
}

function accessOf(op: Operation): string {
  const a = op['x-pinwave-access'];
  if (a === 'public') return '<span class="access open">no token needed</span>';
  if (typeof a === 'string') return `<span class="access">role <b>${esc(a)}</b> or above</span>`;
  return op.security && op.security.length > 0 ? '<span class="access">bearer token</span>' : '<span class="access open">no token needed</span>';
}

function operationHtml(method: string, path: string, op: Operation): string {
  // The transform adds "Role: … or above." to the description for tools; the badge says it here.
  const description = typeof op.description === 'string' ? op.description.replace(/\n*Role: \w+ or above\.$/, '') : undefined;
  const params = op.parameters ?? [];
  const paramTable =
    params.length === 0
      ? ''
      : `<h4>Parameters</h4><table class="fields"><thead><tr><th>name</th><th>in</th><th></th></tr></thead><tbody>${params
          .map((p) => `<tr><td><code>${esc(p.name)}</code>${p.required ? ' <span class="req">required</span>' : ''}</td><td>${esc(p.in)}</td><td>${schemaHtml(p.schema)}${prose(p.description)}</td></tr>`)
          .join('')}</tbody></table>`;
  const body = op.requestBody ? `<h4>Request body${op.requestBody.required ? '' : ' (optional)'}</h4>${prose(op.requestBody.description)}${content(op.requestBody.content)}` : '';
  const responses = Object.entries(op.responses ?? {})
    .map(([status, r]) => `<details${/^2/.test(status) ? ' open' : ''}><summary><span class="status s${esc(status[0])}">${esc(status)}</span> ${inline(r.description ?? '')}</summary>${content(r.content)}</details>`)
    .join('');
  return `<section class="op" id="${esc(opId(method, path))}"><h3><span class="method m-${esc(method)}">${esc(method.toUpperCase())}</span> <code>${esc(path)}</code></h3><p class="summary">${esc(op.summary ?? '')} ${accessOf(op)}</p>${prose(description)}${paramTable}${body}<h4>Responses</h4>${responses}</section>`;
}

const STYLE = `
body{font:15px/1.5 system-ui,sans-serif;margin:0;color:#1d232a;background:#fafbfc}
header,main,nav{max-width:60rem;margin:0 auto;padding:0 1.25rem}
header{padding-top:1.5rem}h1{margin:.2rem 0}h2{margin-top:2.5rem;border-bottom:2px solid #d0d7de;padding-bottom:.2rem}
code{font:13px/1.4 ui-monospace,monospace;background:#eef1f4;padding:0 .25rem;border-radius:3px;word-break:break-all}
nav>ul{columns:2;column-gap:2rem;padding-left:1.2rem}nav ul ul{padding-left:1rem}nav li{break-inside:avoid}
.op{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:.4rem 1rem;margin:1rem 0}
.op h3{margin:.4rem 0}.summary{margin:.2rem 0}.method{display:inline-block;min-width:4.2rem;text-align:center;border-radius:4px;color:#fff;font-size:13px;padding:0 .3rem}
.m-get{background:#1f6feb}.m-post{background:#1a7f37}.m-delete{background:#cf222e}.m-put,.m-patch{background:#9a6700}
.access{font-size:13px;background:#fff8c5;border:1px solid #d4a72c;border-radius:10px;padding:0 .5rem;white-space:nowrap}.access.open{background:#dafbe1;border-color:#4ac26b}
table.fields{border-collapse:collapse;width:100%;margin:.3rem 0}table.fields td,table.fields th{border-top:1px solid #e6e9ed;padding:.25rem .5rem;vertical-align:top;text-align:left}
table.fields td:first-child{white-space:nowrap;width:1%}table.fields table.fields{margin:.2rem 0 .2rem .5rem}
.req{color:#cf222e;font-size:12px}.type{color:#57606a;font-size:13px}.note{color:#57606a;font-size:13px;margin:.2rem 0}
.mt{font:12px ui-monospace,monospace;color:#57606a}.media{margin:.3rem 0 .6rem}
details{margin:.2rem 0}summary{cursor:pointer}.status{font:13px ui-monospace,monospace;font-weight:bold}.s2{color:#1a7f37}.s4,.s5{color:#cf222e}
.schema{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:.4rem 1rem;margin:1rem 0}
`;

/** The page and the Content-Security-Policy it needs (its one inline style, by hash; nothing else). */
export function renderDocsPage(doc: OpenApiDocument): { html: string; csp: string } {
  const ops: Array<{ method: string; path: string; op: Operation }> = [];
  for (const [path, item] of Object.entries(doc.paths)) for (const m of METHODS) if (item[m]) ops.push({ method: m, path, op: item[m] });
  const tags = [...(doc.tags ?? [])];
  for (const { op } of ops) for (const t of op.tags ?? ['other']) if (!tags.some((x) => x.name === t)) tags.push({ name: t });
  const byTag = (name: string) => ops.filter(({ op }) => (op.tags ?? ['other']).includes(name));
  const toc = tags
    .map((t) => `<li><a href="#tag-${esc(anchor(t.name))}">${esc(t.name)}</a><ul>${byTag(t.name).map(({ method, path, op }) => `<li><a href="#${esc(opId(method, path))}">${esc(method.toUpperCase())} ${esc(path)}</a> — ${esc(op.summary ?? '')}</li>`).join('')}</ul></li>`)
    .join('');
  const sections = tags
    .map((t) => `<h2 id="tag-${esc(anchor(t.name))}">${esc(t.name)}</h2>${prose(t.description)}${byTag(t.name).map(({ method, path, op }) => operationHtml(method, path, op)).join('')}`)
    .join('');
  const schemas = Object.entries(doc.components?.schemas ?? {})
    .map(([name, s]) => `<div class="schema" id="schema-${esc(anchor(name))}"><h3>${esc(name)}</h3>${schemaHtml(s)}</div>`)
    .join('');
  const title = `${doc.info.title} API ${doc.info.version}`;
  const html =
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">` +
    `<title>${esc(title)}</title><style>${STYLE}</style></head><body>` +
    `<header><h1>${esc(title)}</h1>${prose(doc.info.description)}<p>OpenAPI ${esc(doc.openapi)} document for tools: <a href="/docs/json"><code>/docs/json</code></a> (or <code>/docs</code> with <code>Accept: application/json</code>).</p></header>` +
    `<nav><h2>Operations</h2><ul>${toc}</ul></nav>` +
    `<main>${sections}<h2 id="schemas">Schemas</h2>${schemas}</main></body></html>`;
  const styleHash = createHash('sha256').update(STYLE).digest('base64');
  const csp = `default-src 'none'; style-src 'sha256-${styleHash}'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`;
  return { html, csp };
}
