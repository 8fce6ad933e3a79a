// `wxgw deliveries list|show|replay|drop`: the dead letters of `delivery: async` callback routes,
// read from the store the policy names (Redis; the memory store keeps them inside the running
// gateway, out of reach). Replay puts a dead letter back at the end of the queue, where the
// running gateways deliver it with a fresh set of attempts; drop deletes it.
//
// What is printed: ids, routes, idempotency keys, attempts, the last error, sizes; `show` adds
// the headers the upstream gets, and the body only with --body (it may hold personal data).
import { parseArgs } from 'node:util';
import { loadPolicy } from '../policy/load.js';
import { createDeliveryQueue } from '../store/create-delivery-queue.js';
import type { DeadLetter, DeliveryQueue } from '../store/delivery-queue.js';
import { PolicyError, formatDiagnostic, type PolicyConfig } from '../types/policy.js';
import { shownPath } from '../shown-path.js';
import { UsageError } from './usage.js';

const ACTIONS = ['list', 'show', 'replay', 'drop'] as const;
type Action = (typeof ACTIONS)[number];

/** Read per route at most: a list longer than this is cut, and says so. */
const LIST_MAX = 1000;

export interface Io {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

function asyncRoutes(config: PolicyConfig): string[] {
  return config.routes.filter((r) => (r.wechat_callback ?? r.wechatpay_notify)?.async).map((r) => r.name);
}

function line(d: DeadLetter): string {
  return [d.id, d.message.route, d.message.key, `attempts=${d.attempts}`, `error="${d.error}"`, `dead_at=${new Date(d.deadAt).toISOString()}`, `bytes=${d.message.body.length}`].join('  ');
}

/** Exit code: 0 done, 1 nothing found or the store failed. Throws UsageError for a wrong command line. */
export async function runDeliveries(args: string[], io: Io): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: { config: { type: 'string', short: 'c' }, policy: { type: 'string' }, route: { type: 'string' }, all: { type: 'boolean' }, body: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    throw new UsageError('deliveries', (err as Error).message.split('\n')[0]!.replace(/\. To specify .*$/, ''));
  }
  const { values, positionals } = parsed;
  if (values.help) {
    io.stdout.write(DELIVERIES_USAGE);
    return 0;
  }
  const [action, id, extra] = positionals;
  if (!ACTIONS.includes(action as Action)) throw new UsageError('deliveries', action === undefined ? `an action is required: ${ACTIONS.join(', ')}` : `unknown action "${action}"; expected ${ACTIONS.join(', ')}`);
  if (extra !== undefined) throw new UsageError('deliveries', `Unexpected argument '${extra}'`);
  const file = values.config ?? values.policy;
  if (file === undefined || file === '') throw new UsageError('deliveries', '--config FILE is required');
  const needsId = action === 'show' || ((action === 'replay' || action === 'drop') && !values.all);
  if (needsId && id === undefined) throw new UsageError('deliveries', `${action} needs a dead letter's ID${action === 'show' ? '' : ' or --all'}`);
  if (!needsId && id !== undefined) throw new UsageError('deliveries', `Unexpected argument '${id}'`);

  let config: PolicyConfig;
  try {
    ({ config } = await loadPolicy(file));
  } catch (err) {
    if (!(err instanceof PolicyError)) throw err;
    for (const d of err.diagnostics) io.stderr.write(formatDiagnostic({ ...d, file: shownPath(d.file) }) + '\n');
    return 1;
  }
  const all = asyncRoutes(config);
  if (values.route !== undefined && !all.includes(values.route)) {
    io.stderr.write(`wxgw deliveries: the policy has no route "${values.route}" with delivery: async${all.length ? ` (it has: ${all.join(', ')})` : ''}\n`);
    return 1;
  }
  if (config.store.kind === 'memory') {
    io.stderr.write('wxgw deliveries: store.kind is memory: dead letters live inside the running gateway and end with it; use store.kind redis to keep and replay them\n');
    return 1;
  }
  const routes = values.route !== undefined ? [values.route] : all;
  const queue = createDeliveryQueue(config.store);
  try {
    return await act(action as Action, queue, routes, id, values.body === true, io);
  } catch (err) {
    io.stderr.write(`wxgw deliveries: the store could not answer: ${(err as Error).message}\n`);
    return 1;
  } finally {
    await queue.close();
  }
}

async function act(action: Action, queue: DeliveryQueue, routes: string[], id: string | undefined, withBody: boolean, io: Io): Promise<number> {
  if (action === 'list' || id === undefined) {
    let n = 0;
    for (const route of routes) {
      const letters = await queue.deadLetters(route, LIST_MAX);
      const total = await queue.deadCount(route);
      for (const d of letters) {
        n++;
        if (action === 'list') io.stdout.write(line(d) + '\n');
        else if (action === 'replay' && (await queue.replay(route, d.id))) io.stdout.write(`replayed ${d.id} (route ${route}, key ${d.message.key})\n`);
        else if (action === 'drop' && (await queue.drop(route, d.id))) io.stdout.write(`dropped ${d.id} (route ${route}, key ${d.message.key})\n`);
      }
      if (total > letters.length) io.stderr.write(`wxgw deliveries: route ${route} has ${total} dead letters; the first ${letters.length} were ${action === 'list' ? 'listed' : 'done'}\n`);
    }
    if (n === 0) io.stderr.write(`wxgw deliveries: no dead letters${routes.length === 1 ? ` on route ${routes[0]}` : ''}\n`);
    return 0;
  }
  for (const route of routes) {
    const found = (await queue.deadLetters(route, LIST_MAX)).find((d) => d.id === id);
    if (!found) continue;
    if (action === 'show') {
      io.stdout.write(
        [
          `id: ${found.id}`,
          `route: ${route}`,
          `idempotency_key: ${found.message.key}`,
          `attempts: ${found.attempts}`,
          `error: ${found.error}`,
          `queued_at: ${new Date(found.message.queuedAt).toISOString()}`,
          `dead_at: ${new Date(found.deadAt).toISOString()}`,
          `path: ${found.message.path}`,
          ...Object.entries(found.message.headers).map(([h, v]) => `header: ${h}: ${v}`),
          `bytes: ${found.message.body.length}`,
        ].join('\n') + '\n',
      );
      if (withBody) io.stdout.write(found.message.body);
      return 0;
    }
    const done = action === 'replay' ? await queue.replay(route, id) : await queue.drop(route, id);
    if (done) {
      io.stdout.write(`${action === 'replay' ? 'replayed' : 'dropped'} ${id} (route ${route}, key ${found.message.key})\n`);
      return 0;
    }
  }
  io.stderr.write(`wxgw deliveries: no dead letter ${id}${routes.length === 1 ? ` on route ${routes[0]}` : ''}\n`);
  return 1;
}

export const DELIVERIES_USAGE = `usage: wxgw deliveries list|show|replay|drop --config FILE [--route R] [ID | --all]

The dead letters of callback routes with delivery: async: callbacks the gateway answered WeChat
for but could not deliver to the upstream within retry.attempts. Read from the Redis store the
policy in FILE names (with the memory store they live and end inside the running gateway).

actions:
  list             every dead letter: id, route, idempotency key, attempts, last error, size
  show ID          one dead letter with the headers the upstream gets (--body: and its body)
  replay ID|--all  back into the queue: the running gateways deliver it with fresh attempts
  drop ID|--all    delete it

options:
  -c, --config FILE   the policy file (also: --policy FILE)
      --route R       only this route
      --all           replay or drop every dead letter (of --route R, else of every route)
      --body          show: write the message body after the details
  -h, --help          this text

exit codes: 0 done, 1 no such dead letter, the policy was rejected or the store failed,
2 usage error
`;
