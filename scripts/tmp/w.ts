import { parentPort } from 'node:worker_threads';
parentPort!.on('message', (m) => { if (m === 'close') parentPort!.close(); else parentPort!.postMessage(m + 1); });
