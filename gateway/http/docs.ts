// The API's own description, open to anyone: `GET /docs/json` is the OpenAPI 3.1 document that
// @fastify/swagger builds from the route schemas (schemas are JSON Schema 2020-12, so the limits
// the API enforces are written as it enforces them); `GET /docs` is the same document for tools
// and, to a browser (Accept preferring text/html), the page docs-page.ts renders from it.
import type { FastifyInstance } from 'fastify';
import { renderDocsPage, type OpenApiDocument } from './docs-page.ts';
import { ignoredQuery } from './schemas.ts';

/** The q an Accept header gives a media type: that of the most specific range matching it (RFC 9110 §12.5.1); 0 when none does. */
function quality(ranges: Array<{ type: string; sub: string; q: number }>, type: string, sub: string): number {
  let specificity = -1;
  let q = 0;
  for (const r of ranges) {
    const s = r.type === type && r.sub === sub ? 2 : r.type === type && r.sub === '*' ? 1 : r.type === '*' && r.sub === '*' ? 0 : -1;
    if (s > specificity) [specificity, q] = [s, r.q];
  }
  return q;
}

/** Whether an Accept header prefers text/html to application/json. A tie (`*\/*`, no header) keeps JSON, what tools and the earlier `/docs` got. */
export function prefersHtml(accept: string | undefined): boolean {
  if (typeof accept !== 'string') return false;
  const ranges = accept.split(',').map((range) => {
    const [media, ...params] = range.split(';').map((p) => p.trim().toLowerCase());
    const [type = '', sub = ''] = media.split('/');
    const qp = params.find((p) => p.startsWith('q='));
    const q = qp === undefined ? 1 : Number(qp.slice(2));
    return { type, sub, q: Number.isFinite(q) ? q : 0 };
  });
  return quality(ranges, 'text', 'html') > quality(ranges, 'application', 'json');
}

const openApiJson = { description: 'the OpenAPI 3.1 document', content: { 'application/json': { schema: { type: 'object', additionalProperties: true } } } } as const;

export async function docsRoutes(app: FastifyInstance): Promise<void> {
  let page: { html: string; csp: string } | null = null;
  const document = () => app.swagger() as unknown as OpenApiDocument;

  app.get(
    '/docs',
    {
      config: { public: true },
      schema: {
        tags: ['meta'],
        summary: 'This API: the OpenAPI 3.1 document, or to a browser its reference page; no token needed',
        description: 'JSON unless the Accept header prefers `text/html`. A page a browser loads, it ignores any query.',
        querystring: ignoredQuery,
        response: { 200: { description: 'the OpenAPI document, or the page', content: { ...openApiJson.content, 'text/html': { schema: { type: 'string' } } } } },
      },
    },
    async (request, reply) => {
      reply.header('vary', 'Accept');
      if (!prefersHtml(request.headers.accept)) return reply.type('application/json; charset=utf-8').send(document());
      page ??= renderDocsPage(document());
      return reply.type('text/html; charset=utf-8').header('content-security-policy', page.csp).header('x-content-type-options', 'nosniff').send(page.html);
    },
  );

  app.get(
    '/docs/json',
    { config: { public: true }, schema: { tags: ['meta'], summary: 'This API as an OpenAPI 3.1 document, for tools; no token needed', response: { 200: openApiJson } } },
    async (_request, reply) => reply.type('application/json; charset=utf-8').send(document()),
  );
}
