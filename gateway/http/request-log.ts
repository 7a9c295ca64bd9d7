// What a request looks like in the log. Query values never reach it: clients put tokens in query
// strings (`?access_token=`, RFC 6750 §2.3, which pinwave does not accept but cannot stop anyone
// sending), so every value is replaced. A parameter's name is kept only when it is one the API
// knows (a route's querystring declares it) or `access_token`, so a log shows what was asked and
// that someone sent a token that way; any other name may itself be a secret (`?<token>`) and is
// replaced too. Headers are not logged at all.
//
//   redactQuery('/v1/stuck?group=th&access_token=abc', known)  →  '/v1/stuck?group=[redacted]&access_token=[redacted]'

const ALWAYS_NAMED: ReadonlySet<string> = new Set(['access_token']);

export function redactQuery(url: string, known: ReadonlySet<string> = ALWAYS_NAMED): string {
  const at = url.indexOf('?');
  if (at < 0 || at === url.length - 1) return url;
  const params = url
    .slice(at + 1)
    .split('&')
    .map((pair) => {
      const name = pair.split('=', 1)[0];
      return known.has(name) || ALWAYS_NAMED.has(name) ? `${name}=[redacted]` : '[redacted]';
    });
  return `${url.slice(0, at)}?${params.join('&')}`;
}

/** fastify's `req` log serializer, with the query redacted; `known` are the query parameter names the routes declare. */
export function requestSerializer(known: ReadonlySet<string>) {
  return (req: { method: string; url: string; ip?: string; host?: string; socket?: { remotePort?: number } }) => ({
    method: req.method,
    url: redactQuery(req.url, known),
    host: req.host,
    remoteAddress: req.ip,
    remotePort: req.socket?.remotePort,
  });
}
