// The API server's connections, for a shutdown that always ends. Node's `server.close()` waits
// for every connection to end, and a connection whose request is half sent never does until
// Node's request timeout (five minutes): one such client held a stopping gateway for as long.
// So the server's connections are tracked, each with the requests on it that have reached their
// handler (body received, validated, being worked on), and a shutdown
//
//   1. `closeIdle()`: closes at once every connection with no request in its handler: idle
//      keep-alive ones, ones whose request is still arriving (its headers or body half sent,
//      a TLS handshake not finished). Nothing was answered on them, so nothing acknowledged is cut;
//   2. `whenIdle()`: waits for the requests in their handlers to be answered (each connection is
//      closed as its last one is, and is told `Connection: close`);
//   3. `destroyAll()`: at the deadline, closes whatever is left.
//
// A request that streams until its client leaves (a rollout's event stream, rollout-events.ts)
// acknowledges nothing, so `streaming(request)` stops counting it: a shutdown closes it with the
// idle connections instead of waiting on it until the deadline.
//
//   const conns = trackConnections(app);   // before listen()
//   ... on SIGTERM: conns.closeIdle(); await Promise.race([conns.whenIdle(), deadline]); conns.destroyAll();
import type { Socket } from 'node:net';
import type { FastifyInstance, FastifyRequest } from 'fastify';

export interface Connections {
  /** connections open now */
  readonly open: number;
  /** requests in their handlers now */
  readonly working: number;
  /** Starts the shutdown: closes every connection that has no request in its handler. */
  closeIdle(): void;
  /** Resolves once no request is in its handler (at once when none is). */
  whenIdle(): Promise<void>;
  /** Closes every connection, whatever it is doing. */
  destroyAll(): void;
  /** The request streams until its client leaves and acknowledges nothing: it no longer counts as work. */
  streaming(request: FastifyRequest): void;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** the server's connections and the requests in their handlers (connections.ts) */
    connections: Connections;
  }
}

const key = (s: Socket) => `${s.remoteAddress}|${s.remotePort}`;

export function trackConnections(app: FastifyInstance): Connections {
  /** every connection: for HTTPS the TCP socket, its TLS socket once the handshake is done */
  const sockets = new Map<Socket, { working: number }>();
  /** HTTPS: TCP sockets whose TLS handshake has not finished, by address:port */
  const handshaking = new Map<string, Socket>();
  let working = 0;
  let closing = false;
  let idleWaiters: Array<() => void> = [];
  const https = 'setSecureContext' in app.server;

  const add = (socket: Socket) => {
    sockets.set(socket, { working: 0 });
    socket.once('close', () => sockets.delete(socket));
  };
  app.server.on('connection', (raw: Socket) => {
    if (!https) return add(raw);
    const k = key(raw);
    handshaking.set(k, raw);
    raw.once('close', () => handshaking.get(k) === raw && handshaking.delete(k));
    if (closing) raw.destroy();
  });
  if (https) {
    app.server.on('secureConnection', (tls: Socket) => {
      handshaking.delete(key(tls));
      add(tls);
      if (closing) tls.destroy();
    });
  }

  // A request counts from the end of its body (preValidation runs once the body is parsed) until
  // its answer is sent, or its client goes away.
  const counted = new WeakSet<object>();
  app.addHook('preValidation', async (request) => {
    const entry = sockets.get(request.raw.socket);
    if (!entry) return;
    counted.add(request);
    entry.working++;
    working++;
  });
  const done = (request: { raw: { socket: Socket } }) => {
    if (!counted.has(request)) return;
    counted.delete(request);
    working--;
    const entry = sockets.get(request.raw.socket);
    if (entry) {
      entry.working--;
      // Told `Connection: close`, Node ends it after the answer; end() covers an answer sent before.
      if (closing && entry.working === 0) request.raw.socket.end();
    }
    if (working === 0) {
      const waiters = idleWaiters;
      idleWaiters = [];
      for (const w of waiters) w();
    }
  };
  app.addHook('onSend', async (_request, reply) => {
    if (closing) reply.header('connection', 'close');
  });
  app.addHook('onResponse', async (request) => done(request));
  app.addHook('onRequestAbort', async (request) => done(request));

  const connections: Connections = {
    get open() {
      return sockets.size + handshaking.size;
    },
    get working() {
      return working;
    },
    closeIdle() {
      closing = true;
      for (const raw of handshaking.values()) raw.destroy();
      for (const [socket, entry] of sockets) if (entry.working === 0) socket.destroy();
    },
    whenIdle() {
      if (working === 0) return Promise.resolve();
      return new Promise((resolve) => idleWaiters.push(resolve));
    },
    streaming(request) {
      done(request);
    },
    destroyAll() {
      closing = true;
      for (const raw of handshaking.values()) raw.destroy();
      for (const socket of sockets.keys()) socket.destroy();
    },
  };
  app.decorate('connections', connections);
  return connections;
}
