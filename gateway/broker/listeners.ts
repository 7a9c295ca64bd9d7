// The broker's listeners (docs/architecture.md §5): plain MQTT over TCP, MQTT over TLS, MQTT over
// WebSocket, each optional, each handing its connections to one `accept` function. They know
// nothing of MQTT; closing them ends every connection they accepted, authenticated or not.
//
//   const listeners = await startListeners({ host: '127.0.0.1', tcp: { port: 0 }, accept, log });
//   listeners.ports;          // { tcp: 40123 }
//   await listeners.close();
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createServer as createTlsServer, type TlsOptions } from 'node:tls';

export interface BrokerTlsOptions extends TlsOptions {
  /** TCP port of the MQTT-over-TLS listener; 0 picks a free one. Default 8883. */
  port?: number;
  /** PEM private key of the gateway's server certificate. Required. */
  key: NonNullable<TlsOptions['key']>;
  /** PEM server certificate (chain). Required. */
  cert: NonNullable<TlsOptions['cert']>;
}

export interface BrokerWebSocketOptions {
  /** TCP port of the MQTT-over-WebSocket listener; 0 picks a free one. Default 8083. */
  port?: number;
  /** HTTP path that accepts the upgrade. Default `/mqtt`. */
  path?: string;
}

export interface BrokerPorts {
  /** the plain MQTT listener's; absent when it is off (`plain: false`) */
  tcp?: number;
  tls?: number;
  ws?: number;
}

export interface ListenerOptions {
  host: string;
  /** plain MQTT over TCP; absent: none */
  tcp?: { port: number };
  tls?: BrokerTlsOptions;
  websocket?: BrokerWebSocketOptions;
  /** the largest MQTT packet accepted, so WebSocket never buffers far more than that first */
  maxFrameBytes: number;
  accept(stream: Duplex, req?: IncomingMessage): void;
  log: { debug(obj: Record<string, unknown>, msg?: string): void; warn(obj: Record<string, unknown>, msg?: string): void };
}

export interface Listeners {
  readonly ports: BrokerPorts;
  /** Stops listening for new connections; open ones stay. */
  stopListening(): Promise<void>;
  /** Stops listening and destroys every connection still open (a silent one would hold the process until its CONNECT timeout). */
  close(): Promise<void>;
}

const DEFAULT_TLS_PORT = 8883;
const DEFAULT_WS_PORT = 8083;
const DEFAULT_WS_PATH = '/mqtt';

/** Binds every listener asked for; on a failure, closes those already bound and rejects. */
export async function startListeners(o: ListenerOptions): Promise<Listeners> {
  const servers: Array<NetServer | HttpServer> = [];
  const sockets = new Set<Socket>();
  const ports: BrokerPorts = {};
  let closeWebSockets: (() => void) | null = null;

  const bind = (server: NetServer | HttpServer, port: number): Promise<number> => {
    servers.push(server);
    server.on('connection', (socket: Socket) => {
      // MQTT packets are small and latency matters more than segment count: with Nagle on, a
      // bundle written while an earlier PUBACK is unacknowledged waits for the device's delayed ACK.
      socket.setNoDelay(true);
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
    });
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, o.host, () => {
        server.off('error', reject);
        server.on('error', (err) => o.log.warn({ err: err.message }, 'listener error'));
        resolve((server.address() as AddressInfo).port);
      });
    });
  };

  let stopped: Promise<void> | null = null;
  const stopListening = () =>
    (stopped ??= Promise.all(servers.map((server) => new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve())))).then(() => undefined));
  const close = async () => {
    const closed = stopListening();
    closeWebSockets?.();
    for (const socket of sockets) socket.destroy();
    await closed;
  };

  try {
    if (o.tcp) {
      ports.tcp = await bind(createNetServer((socket) => o.accept(socket)), o.tcp.port);
    }
    if (o.tls) {
      const { port, ...secureContext } = o.tls;
      const tls = createTlsServer(secureContext, (socket) => o.accept(socket));
      tls.on('tlsClientError', (err) => o.log.debug({ err: err.message }, 'TLS handshake failed'));
      ports.tls = await bind(tls, port ?? DEFAULT_TLS_PORT);
    }
    if (o.websocket) {
      // `ws` is loaded only when WebSocket is asked for: plain and TLS listeners need nothing beyond node.
      const { WebSocketServer, createWebSocketStream } = await import('ws');
      const http = createHttpServer((_req, res) => {
        res.writeHead(426, { connection: 'close' }).end();
      });
      const wss = new WebSocketServer({
        server: http,
        path: o.websocket.path ?? DEFAULT_WS_PATH,
        // One WebSocket message may carry a few MQTT packets; the frame guard enforces the real
        // limit, this only keeps ws from buffering a 100 MiB message (its default) first.
        maxPayload: 4 * o.maxFrameBytes,
        perMessageDeflate: false,
      });
      wss.on('connection', (ws, req) => o.accept(createWebSocketStream(ws), req));
      wss.on('error', (err) => o.log.warn({ err: err.message }, 'WebSocket server error'));
      closeWebSockets = () => {
        for (const ws of wss.clients) ws.terminate();
        wss.close();
      };
      ports.ws = await bind(http, o.websocket.port ?? DEFAULT_WS_PORT);
    }
  } catch (err) {
    await close();
    throw err;
  }
  return { ports, stopListening, close };
}
