// `pinwave rollout list` on a gateway with more rollouts than one page of the API: the first page says
// there are more (as devices list and bundle list do), and --all follows every page; never a list cut
// short without a word (the newest rollouts are on the later pages).
import t from 'tap';
import { standIn } from '../fixtures/stand-in.ts';
import { run } from '../../scripts/cli.ts';
import type { Io } from '../../scripts/args.ts';

t.test('rollout list says when there are more pages, and --all reads them all', async (t) => {
  const urls: string[] = [];
  const api = await standIn(t, (req, res) => {
    urls.push(req.url!);
    const second = new URL(req.url!, 'http://x').searchParams.get('cursor') === 'r-g-1-aaaaaa';
    const body = second ? { items: [{ id: 'r-g-2-bbbbbb', state: 'running', waves: [] }], next: null } : { items: [{ id: 'r-g-1-aaaaaa', state: 'completed', waves: [] }], next: 'r-g-1-aaaaaa' };
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  });
  const pinwave = async (args: string[]) => {
    const out: string[] = [];
    const io: Io = { out: (l) => void out.push(l), err: () => {}, env: { PINWAVE_API: api, PINWAVE_TOKEN: 'x'.repeat(32) }, tty: false };
    return { code: await run(['rollout', 'list', ...args], io), stdout: out.join('\n') };
  };
  t.same(await pinwave([]), { code: 0, stdout: 'r-g-1-aaaaaa completed\n… more rollouts: --all for every one' });
  t.same(await pinwave(['--all', '--state', 'running']), { code: 0, stdout: 'r-g-1-aaaaaa completed\nr-g-2-bbbbbb running' });
  t.match(urls.at(-1), /^\/v1\/rollouts\?(?=.*state=running)(?=.*cursor=r-g-1-aaaaaa)/, 'the next page keeps the filter');
  t.same(JSON.parse((await pinwave(['--all', '--json'])).stdout), { items: [{ id: 'r-g-1-aaaaaa', state: 'completed', waves: [] }, { id: 'r-g-2-bbbbbb', state: 'running', waves: [] }], next: null }, '--json: the same shape as the API\'s page');
});
