// How an endpoint is written for people: HOST:PORT, an IPv6 address in brackets (RFC 3986 §3.2.2),
// so "[::1]:443" and never "::1:443", where the port cannot be told from the address.
//
//   endpointText('api.example.com', 443);   // 'api.example.com:443'
//   endpointText('::1', 443);               // '[::1]:443'

/** `host:port`, the host in brackets when it holds a colon (an IPv6 literal). */
export function endpointText(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}
