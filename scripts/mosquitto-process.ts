// A Mosquitto of its own for tests and benchmarks: `mosquitto -c <conf>` as a child process,
// resolved once it accepts TCP connections on its port, stopped with SIGTERM (its clean shutdown
// writes its persistence) or SIGKILL. Never the machine's shared broker: the caller names the
// config, and `freePort()` finds a port by binding port 0 first.
//
//   const port = await freePort();
//   const broker = await startMosquitto({ confPath, port });
//   ...
//   await broker.stop();
import { spawn, type ChildProcess } from 'node:child_process';
import { connect, createServer } from 'node:net';
import { endpointText } from '../firmware-manifest/endpoint-text.ts';

export interface MosquittoProcess {
  readonly port: number;
  readonly pid: number;
  /** ms from spawn until the listener accepted a connection */
  readonly startMs: number;
  /** everything the broker wrote to stdout and stderr so far */
  log(): string;
  /** SIGTERM (clean shutdown, persistence written) and wait for exit; SIGKILL after `graceMs` */
  stop(graceMs?: number): Promise<void>;
  /** SIGKILL and wait for exit: a crash, nothing written */
  kill(): Promise<void>;
  /** resolves when the process has exited */
  readonly exited: Promise<number | null>;
}

export interface StartMosquittoOptions {
  confPath: string;
  /** the port the config's listener names (checked by connecting to it) */
  port: number;
  host?: string;
  /** the broker binary; default `mosquitto` on PATH, else /usr/sbin/mosquitto */
  binary?: string;
  /** how long to wait for the listener; default 60 s (a 100,000-device plugin file takes seconds to load) */
  readyTimeoutMs?: number;
}

/** A TCP port that was free a moment ago (bound on port 0, then closed). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export async function startMosquitto(o: StartMosquittoOptions): Promise<MosquittoProcess> {
  const host = o.host ?? '127.0.0.1';
  const started = performance.now();
  const child = spawn(o.binary ?? (await mosquittoBinary()), ['-c', o.confPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const append = (chunk: Buffer) => {
    // bounded: a broker logging every connection of a large fleet must not grow this without end
    output = (output + chunk.toString('utf8')).slice(-256 * 1024);
  };
  child.stdout!.on('data', append);
  child.stderr!.on('data', append);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const spawnError = new Promise<never>((_, reject) => child.once('error', reject));
  const deadline = Date.now() + (o.readyTimeoutMs ?? 60_000);
  let early: number | null | undefined;
  void exited.then((code) => (early = code));
  for (;;) {
    if (early !== undefined) throw new Error(`mosquitto exited with ${early} before listening on ${endpointText(host, o.port)}:\n${output}`);
    if (await Promise.race([canConnect(host, o.port), spawnError])) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`mosquitto did not listen on ${endpointText(host, o.port)} within ${o.readyTimeoutMs ?? 60_000} ms:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  const startMs = performance.now() - started;
  return {
    port: o.port,
    pid: child.pid!,
    startMs,
    log: () => output,
    exited,
    stop: (graceMs = 10_000) => stop(child, exited, 'SIGTERM', graceMs),
    kill: () => stop(child, exited, 'SIGKILL', 0),
  };
}

async function stop(child: ChildProcess, exited: Promise<number | null>, signal: NodeJS.Signals, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill(signal);
  if (signal === 'SIGKILL') {
    await exited;
    return;
  }
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function mosquittoBinary(): Promise<string> {
  const { access } = await import('node:fs/promises');
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin'])) {
    if (!dir) continue;
    try {
      await access(`${dir}/mosquitto`);
      return `${dir}/mosquitto`;
    } catch {
      // not here
    }
  }
  throw new Error('mosquitto is not installed (Debian: apt-get install mosquitto; .ci/run installs it)');
}
