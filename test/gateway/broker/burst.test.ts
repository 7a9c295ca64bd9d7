// A wave through the broker's delivery path at the largest size CI affords (docs/architecture.md §5).
//
// With aedes' default emitter concurrency (100 in flight), the acks of a wave queue behind the
// bundles still being written and are drained by recursion, one level of stack per queued ack: on
// this project's machine 12,000 devices acking one wave overflowed the default stack (984 KiB) and
// killed the broker, 8,000 did not. CI cannot hold 12,000 connections in a few seconds, so the
// broker runs here in a child process under a 128 KiB stack, where 3,000 devices overflowed it
// every time without the fix (concurrency 0, gateway/broker.ts). The devices run in this process,
// as a fleet runs beside the gateway: their acks arrive in batches while the wave is still going
// out, which is what fills the queue (in one process with the broker they did not).
import { spawn } from 'node:child_process';
import type { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { deviceTopic } from '../../../gateway/topics.ts';
import { connectPacket, publishPacket, pubackPacket, rawConnect, subscribePacket } from '../../fixtures/raw-mqtt.ts';

const LOADER = fileURLToPath(new URL('../../../node_modules/@tapjs/typescript/dist/esm/import.mjs', import.meta.url));
const CHILD = fileURLToPath(new URL('../../fixtures/broker-burst.ts', import.meta.url));
const DEVICES = 3000;
const STACK_KB = 128;

/** A device that subscribes to its bundle topic (QoS 1) and, for each bundle, sends PUBACK and at once an ack. */
function device(port: number, id: string): Promise<Socket> {
  let nextId = 2;
  return new Promise((resolve, reject) => {
    rawConnect(port, (p, socket) => {
      if (p.type === 9) resolve(socket); // SUBACK
      if (p.type === 3 && ((p.flags >> 1) & 3) === 1) {
        const packetId = p.body.readUInt16BE(2 + p.body.readUInt16BE(0));
        socket.write(Buffer.concat([pubackPacket(packetId), publishPacket(deviceTopic(id, 'ack'), Buffer.from([0xa0]), 1, nextId++)]));
      }
    }).then((socket) => {
      socket.on('close', () => reject(new Error(`${id}: closed before its SUBACK`)));
      socket.write(Buffer.concat([connectPacket({ id, password: 'x' }), subscribePacket(1, [deviceTopic(id, 'bundle')])]));
    }, reject);
  });
}

t.test(`a wave of ${DEVICES.toLocaleString('en-US')} bundles acked at once goes through a broker under a ${STACK_KB} KiB stack`, async (t) => {
  const child = spawn(process.execPath, [`--stack-size=${STACK_KB}`, '--import', LOADER, CHILD], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const exited = new Promise<never>((_, reject) => child.once('exit', (code, signal) => reject(new Error(`the broker exited (${signal ?? code}):\n${output.slice(-2000)}`))));
  exited.catch(() => {});
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const reply = <T>() => Promise.race([new Promise<T>((resolve) => child.once('message', (m) => resolve(m as T))), exited]);

  const { port } = await reply<{ port: number }>();
  const ids = Array.from({ length: DEVICES }, (_, i) => `burst-${String(i).padStart(5, '0')}`);
  const sockets: Socket[] = [];
  t.teardown(() => sockets.forEach((s) => s.destroy()));
  for (let i = 0; i < ids.length; i += 250) sockets.push(...(await Promise.race([Promise.all(ids.slice(i, i + 250).map((id) => device(port, id))), exited])));

  child.send({ ids });
  const { acked } = await reply<{ acked: number; ms: number }>();
  t.equal(acked, DEVICES, 'every device acked its bundle');
  t.equal(child.exitCode, null, 'and the broker is alive');
});
