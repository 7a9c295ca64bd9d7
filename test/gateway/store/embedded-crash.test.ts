// The durability contract at the store (docs/storage.md): a child applies acks and prints each one
// whose apply resolved; it is SIGKILLed at a seeded random moment, mid-write or mid-snapshot; after
// each restart every printed ack is in the store, and the journal replays cleanly.
import t from 'tap';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { EmbeddedStore } from '../../../gateway/store/embedded.ts';

const ROUNDS = 10;
// Each round starts a process and reopens the store: more than tap's 30 s for the whole file.
t.setTimeout(120_000);

function rng(seed: number) {
  return () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
}

t.test('every ack whose apply resolved survives a SIGKILL, round after round', async (t) => {
  const dir = join(t.testdir(), 'data');
  const random = rng(13);
  const acked = new Set<number>();
  let next = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const child = spawn(process.execPath, [join(import.meta.dirname, '../../fixtures/store-acker.mjs'), dir, String(next)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let buf = '';
    let ready = false;
    let max = next;
    const readyP = new Promise<void>((resolve) => {
      child.stdout!.on('data', (b: Buffer) => {
        buf += b;
        const lines = buf.split('\n');
        buf = lines.pop()!;
        for (const l of lines) {
          if (l === 'ready') {
            ready = true;
            resolve();
          } else if (ready && l !== '') {
            const n = Number(l);
            acked.add(n);
            if (n >= max) max = n + 1;
          }
        }
      });
    });
    // 'close', not 'exit': the child's last lines may still be in the pipe when it has exited, and
    // the next round's keys start past the last one read (a loaded parent once read 2,000 short).
    const exited = new Promise<void>((r) => child.once('close', () => r()));
    await readyP;
    await new Promise((r) => setTimeout(r, 50 + Math.floor(random() * 300)));
    child.kill('SIGKILL');
    await exited;
    next = max + 1000; // keys of the next round never collide with an unacked one of this round
    const s = new EmbeddedStore({ dir });
    await s.open();
    const keys = new Set<number>();
    let cursor: string | null = null;
    do {
      const page: Awaited<ReturnType<typeof s.listItems>> = await s.listItems('acks', { cursor, limit: 1000 });
      for (const e of page.items) keys.add(Number(e.key));
      cursor = page.next;
    } while (cursor !== null);
    const lost = [...acked].filter((n) => !keys.has(n));
    t.same(lost.slice(0, 10), [], `round ${round}: ${acked.size} acks answered so far, none lost (${keys.size} stored, ${s.status().snapshots} snapshots this open)`);
    t.equal((await s.getCounters()).acks, keys.size, `round ${round}: each batch whole: its counter and its item together`);
    await s.close();
  }
  t.ok(acked.size > ROUNDS * 100, `${acked.size} acks answered over ${ROUNDS} rounds`);
});
