import { Worker } from 'node:worker_threads';
for (let i = 0; i < 4; i++) {
  const w = new Worker(new URL('./w.ts', import.meta.url));
  w.postMessage(i);
  const v = await new Promise((r) => w.once('message', r));
  console.log('got', v);
  const exited = new Promise((r) => w.once('exit', r));
  if (i % 2) w.postMessage('close'); else await w.terminate();
  await exited;
  console.log('exited', i);
}
