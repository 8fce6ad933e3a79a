// WeChat's retries through the real gateway: two instances sharing a real redis-server, a real
// upstream whose answers the test controls (reset, 500, held until released), pushes made with
// @wecom/crypto (WeCom's official implementation, independent of the gateway's) and Pay
// notifications signed with node's crypto. Every message must reach the backend's success path
// exactly once, however WeChat retries it: after a failed delivery, past its own hang-up, re-signed
// with a new nonce, or to the other instance; and every retry of a delivered one gets the same bytes.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { decrypt as wecomDecrypt, encrypt as wecomEncrypt, getSignature } from '@wecom/crypto';
import { Redis } from 'ioredis';
import type { CallbackRequest } from '../../gateway/guards/callback-types.js';
import { RedisStore } from '../../gateway/store/redis-store.js';
import { startTestGateway, type PolicyContext, type TestGateway } from '../helpers/gateway.js';
import { httpsRequest, type ClientResponse } from '../helpers/https-client.js';
import { h2Connect } from '../helpers/h2-client.js';
import { sample } from '../helpers/metrics-text.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { eventually, waitUntil } from '../helpers/wait.js';
import { encryptPayResource, newMsgId, payNotification, payNotificationBody, plainPush, randomEncodingAesKey, textMessage, type WechatAccount } from '../helpers/wechat-callback.js';

const account: WechatAccount = { appid: 'wx1234567890abcdef', token: 'tok3nForRetryTests', encodingAesKey: randomEncodingAesKey() };
const APIV3_KEY = 'a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6';
const PUB_KEY_ID = 'PUB_KEY_ID_0114232134912410000000000000';
const payKeys = generateKeyPairSync('rsa', { modulusLength: 2048 });
const REPLY_XML = '<xml><ToUserName><![CDATA[oABCDEFG0123456789]]></ToUserName><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[收到]]></Content></xml>';
const PAY_ANSWER = '{"code":"SUCCESS","message":"成功"}';

const now = (): number => Math.floor(Date.now() / 1000);
const nonce = (): string => String(100_000_000 + randomBytes(4).readUInt32BE(0) % 900_000_000);

/** A safe-mode push as WeChat makes it, encrypted and signed by @wecom/crypto; each call is a new signed request. */
function wecomPush(message: string, o: { timestamp?: number; nonce?: string; format?: 'xml' | 'json' } = {}): CallbackRequest {
  const timestamp = String(o.timestamp ?? now());
  const n = o.nonce ?? nonce();
  const encrypt = wecomEncrypt(account.encodingAesKey, message, account.appid);
  const json = o.format === 'json';
  const body = json ? JSON.stringify({ ToUserName: 'gh_0123456789ab', Encrypt: encrypt }) : `<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName><Encrypt><![CDATA[${encrypt}]]></Encrypt></xml>`;
  return {
    method: 'POST',
    query: new URLSearchParams({ timestamp, nonce: n, openid: 'oABCDEFG0123456789', encrypt_type: 'aes', msg_signature: getSignature(account.token, timestamp, n, encrypt) }),
    headers: { 'content-type': json ? 'application/json' : 'text/xml' },
    body: Buffer.from(body, 'utf8'),
  };
}

function eventMessage(from: string, created: number, event: string): string {
  return `<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName><FromUserName><![CDATA[${from}]]></FromUserName><CreateTime>${created}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[${event}]]></Event></xml>`;
}

function payNote(id = `EV-${randomBytes(8).toString('hex')}`, o: { nonce?: string; timestamp?: number } = {}): CallbackRequest {
  const transaction = JSON.stringify({ mchid: '1230000109', out_trade_no: id, trade_state: 'SUCCESS' });
  return payNotification(payKeys.privateKey, PUB_KEY_ID, payNotificationBody(encryptPayResource(APIV3_KEY, transaction), undefined, id), o);
}

/** A re-signed copy of a Pay notification: the same body, a new nonce and signature. */
function resigned(note: CallbackRequest): CallbackRequest {
  return payNotification(payKeys.privateKey, PUB_KEY_ID, note.body, {});
}

type Behaviour = 'reset' | '500' | 'hold';

/**
 * The backend: answers each request as the next planned behaviour says (then normally), and
 * records each message it handled successfully by its id (MsgId, event key, notification id).
 */
interface Backend {
  upstream: TestUpstream;
  plan: Behaviour[];
  held: (() => void)[];
  handled: string[];
  times(id: string): number;
}

/** The id of what the backend received: the decrypted or decryptable push's MsgId or event, the Pay transaction's out_trade_no. */
function idOf(url: string, body: Buffer): string {
  const text = body.toString('utf8');
  if (url.startsWith('/pay/')) return (JSON.parse(text) as { out_trade_no: string }).out_trade_no;
  let message = text;
  const encrypted = /<Encrypt><!\[CDATA\[([^\]]+)\]\]><\/Encrypt>/.exec(text) ?? /"Encrypt":"([^"]+)"/.exec(text);
  if (encrypted) message = wecomDecrypt(account.encodingAesKey, encrypted[1]!).message;
  const msgId = /<MsgId>(\d+)<\/MsgId>/.exec(message) ?? /"MsgId":(\d+)/.exec(message);
  if (msgId) return msgId[1]!;
  const field = (name: string): string => new RegExp(`<${name}>(?:<!\\[CDATA\\[)?([^<\\]]*)`).exec(message)?.[1] ?? '';
  return `${field('FromUserName')}/${field('CreateTime')}/${field('Event')}`;
}

async function startBackend(): Promise<Backend> {
  const b: Backend = {
    upstream: undefined as unknown as TestUpstream,
    plan: [],
    held: [],
    handled: [],
    times: (id) => b.handled.filter((h) => h === id).length,
  };
  b.upstream = await startUpstream((req, res, body) => {
    const url = req.url ?? '';
    const answer = (): void => {
      b.handled.push(idOf(url, body));
      if (url.startsWith('/pay/')) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(PAY_ANSWER);
      } else if (url.startsWith('/wx/safe')) {
        res.writeHead(200, { 'content-type': 'text/xml' });
        res.end(REPLY_XML);
      } else {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end('success');
      }
    };
    switch (b.plan.shift()) {
      case 'reset':
        res.socket?.destroy();
        return;
      case '500':
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end('backend error');
        return;
      case 'hold':
        b.held.push(answer);
        return;
      default:
        answer();
    }
  });
  return b;
}

function policy(backend: Backend, redisUrl: string): (ctx: PolicyContext) => string {
  return (ctx) => {
    const pubFile = join(ctx.dir, 'wechatpay_pub_key.pem');
    writeFileSync(pubFile, payKeys.publicKey.export({ type: 'spki', format: 'pem' }).toString());
    return `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
  admin: { listen: "127.0.0.1:${ctx.adminPort}" }
${ctx.tlsSection}
wechat:
  appid: ${account.appid}
  token: ${account.token}
  encoding_aes_key: "${account.encodingAesKey}"
wechatpay:
  apiv3_key: ${APIV3_KEY}
  public_keys:
    - { id: ${PUB_KEY_ID}, file: ${pubFile} }
store: { kind: redis, redis_url: "${redisUrl}", command_timeout: 1s }
upstreams:
  backend: { url: "${backend.upstream.url}", timeout: 20s }
routes:
  - name: wx-safe
    match: { path: /wx/safe }
    upstream: backend
    wechat_callback: { decrypt: true }
  - name: wx-raw
    match: { path: /wx/raw }
    upstream: backend
    wechat_callback: { decrypt: false }
  - name: pay
    match: { path: /pay/notify }
    upstream: backend
    wechatpay_notify: { decrypt: true }
defaults: { allow: any }
`;
  };
}

function send(t: TestGateway, path: string, req: CallbackRequest): Promise<ClientResponse> {
  return httpsRequest(t.port, t.ca, { method: req.method, path: `${path}?${req.query.toString()}`, headers: req.headers, body: req.body });
}

/** A request WeChat gives up on: `hangUp()` closes the connection before any answer. */
function hangingUp(t: TestGateway, path: string, req: CallbackRequest): { hangUp(): void } {
  const r = request({
    host: '127.0.0.1',
    port: t.port,
    servername: 'localhost',
    method: req.method,
    path: `${path}?${req.query.toString()}`,
    headers: { host: 'localhost', ...req.headers, 'content-length': req.body.length },
    ca: t.ca,
    agent: false,
  });
  r.on('error', () => undefined);
  r.end(req.body);
  return { hangUp: () => r.destroy() };
}

function reason(res: ClientResponse): string | undefined {
  return res.status < 400 ? undefined : (JSON.parse(res.text) as { error?: { reason: string } }).error?.reason;
}

/** Same status, content type and bytes: a retry answered as its first delivery was. */
function sameAnswer(res: ClientResponse, first: ClientResponse): void {
  assert.equal(res.status, first.status, res.text);
  assert.equal(res.headers['content-type'], first.headers['content-type']);
  assert.equal(res.text, first.text);
}

async function scrape(t: TestGateway, series: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${t.ctx.adminPort}/metrics`)).text();
  return sample(text, series) ?? 0;
}

describe('signed callbacks over WeChat retries: delivered once, retries answered from the store', () => {
  let backend: Backend;
  let redis: TestRedis;
  let admin: Redis;
  let a: TestGateway;
  let b: TestGateway;

  before(async () => {
    backend = await startBackend();
    redis = await startRedis();
    admin = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    [a, b] = await Promise.all([startTestGateway(policy(backend, redis.url)), startTestGateway(policy(backend, redis.url))]);
    for (const t of [a, b]) {
      assert.ok(t.gw.store instanceof RedisStore);
      assert.equal(await t.gw.store.connect(5000), true);
    }
  });

  after(async () => {
    await Promise.all([a?.close(), b?.close()]);
    admin?.disconnect();
    await Promise.all([backend?.upstream.close(), redis?.stop()]);
  });

  test('a push whose first delivery failed (connection reset, then 500) is delivered by the retry, once', async () => {
    const msgId = newMsgId();
    const push = wecomPush(textMessage(0, msgId));
    backend.plan.push('reset', '500');
    assert.equal(reason(await send(a, '/wx/safe', push)), 'upstream_unavailable');
    const failed = await send(a, '/wx/safe', push);
    assert.equal(failed.status, 500, 'the backend error goes back, and WeChat retries');
    const delivered = await send(b, '/wx/safe', push);
    assert.equal(delivered.status, 200, delivered.text);
    assert.match(delivered.text, /^<xml><Encrypt>/, 'the sealed reply');
    sameAnswer(await send(a, '/wx/safe', push), delivered);
    assert.equal(backend.times(msgId), 1);
  });

  test('a retry of a delivered push gets the same sealed reply, byte for byte, and the backend sees it once', async () => {
    const msgId = newMsgId();
    const push = wecomPush(textMessage(0, msgId));
    const first = await send(a, '/wx/safe', push);
    assert.equal(first.status, 200, first.text);
    const env = /<Encrypt><!\[CDATA\[([^\]]+)\]\]>/.exec(first.text);
    assert.ok(env, first.text);
    assert.equal(wecomDecrypt(account.encodingAesKey, env[1]!).message, REPLY_XML, 'the reply WeCom decrypts is the backend\'s');
    const replays = await scrape(a, 'wxgw_callback_replays_total{route="wx-safe",result="replayed"}');
    for (const t of [a, b, a]) sameAnswer(await send(t, '/wx/safe', push), first);
    assert.equal(backend.times(msgId), 1);
    assert.equal(await scrape(a, 'wxgw_callback_replays_total{route="wx-safe",result="replayed"}'), replays + 2);
    const line = await a.waitForLog((l) => l.msg === 'request' && l.route === 'wx-safe' && l.callback === 'replayed', 'an access line saying callback=replayed');
    assert.equal(line.status, 200);
    assert.equal(line.upstream, undefined, 'a replay never reached the upstream');
  });

  test('a push WeChat re-signs with a new nonce and timestamp is delivered once and answered as the first', async () => {
    const message = textMessage(0, newMsgId());
    const msgId = /<MsgId>(\d+)/.exec(message)![1]!;
    const first = await send(a, '/wx/safe', wecomPush(message));
    assert.equal(first.status, 200, first.text);
    const before = await scrape(b, 'wxgw_callback_replays_total{route="wx-safe",result="deduplicated"}');
    sameAnswer(await send(b, '/wx/safe', wecomPush(message, { timestamp: now() + 5 })), first);
    sameAnswer(await send(a, '/wx/safe', wecomPush(message, { format: 'xml' })), first);
    assert.equal(backend.times(msgId), 1);
    assert.equal(await scrape(b, 'wxgw_callback_replays_total{route="wx-safe",result="deduplicated"}'), before + 1);
  });

  test('events without MsgId are deduplicated by FromUserName, CreateTime and Event; a different event is delivered', async () => {
    const from = `o${randomBytes(8).toString('hex')}`;
    const created = now();
    const subscribe = eventMessage(from, created, 'subscribe');
    assert.equal((await send(a, '/wx/safe', wecomPush(subscribe))).status, 200);
    assert.equal((await send(b, '/wx/safe', wecomPush(subscribe))).status, 200);
    assert.equal((await send(a, '/wx/safe', wecomPush(eventMessage(from, created, 'SCAN')))).status, 200);
    assert.equal(backend.times(`${from}/${created}/subscribe`), 1);
    assert.equal(backend.times(`${from}/${created}/SCAN`), 1);
  });

  test('a route that forwards ciphertext decrypts for the MsgId alone: a re-signed push reaches it once', async () => {
    const msgId = newMsgId();
    const message = textMessage(0, msgId);
    const first = await send(a, '/wx/raw', wecomPush(message));
    assert.equal(first.text, 'success');
    sameAnswer(await send(b, '/wx/raw', wecomPush(message)), first);
    assert.equal(backend.times(msgId), 1);
  });

  test('distinct messages sharing a nonce are all delivered: safe mode with one timestamp, plain mode with another', async () => {
    const shared = nonce();
    const timestamp = now();
    const ids = [newMsgId(), newMsgId(), newMsgId()];
    for (const id of ids) assert.equal((await send(a, '/wx/safe', wecomPush(textMessage(0, id), { timestamp, nonce: shared }))).status, 200);
    // JSON MsgIds past 2^53, one apart: JSON.parse would make them one number.
    const big = ['24571234567890123', '24571234567890124'];
    for (const id of big) {
      const json = `{"ToUserName":"gh_0123456789ab","FromUserName":"oABC","CreateTime":${timestamp},"MsgType":"text","Content":"hi","MsgId":${id}}`;
      assert.equal((await send(b, '/wx/safe', wecomPush(json, { timestamp, nonce: shared, format: 'json' }))).status, 200);
    }
    const plainIds = [newMsgId(), newMsgId()];
    for (const [i, id] of plainIds.entries()) {
      const push = plainPush(account, textMessage(0, id), { timestamp: timestamp - i, nonce: shared });
      assert.equal((await send(a, '/wx/raw', push)).status, 200);
    }
    for (const id of [...ids, ...big, ...plainIds]) assert.equal(backend.times(id), 1, id);
  });

  test('a slow backend past WeChat\'s hang-up: the upstream request finishes, and the retries (one waiting on the other instance) get its answer', async () => {
    const msgId = newMsgId();
    const push = wecomPush(textMessage(0, msgId));
    backend.plan.push('hold');
    const closedBefore = a.logs.filter((l) => l.msg === 'request' && l.route === 'wx-safe' && l.reason === 'client_closed').length;
    const first = hangingUp(a, '/wx/safe', push);
    await waitUntil(() => (backend.held.length === 1 ? true : undefined), 'the backend holds the push');
    first.hangUp();
    await waitUntil(() => (a.logs.filter((l) => l.msg === 'request' && l.route === 'wx-safe' && l.reason === 'client_closed').length > closedBefore ? true : undefined), 'the gateway saw WeChat hang up', { describe: a.logText });
    // WeChat's retry reaches the other instance, which waits for the delivery in flight.
    const gets = async (): Promise<number> => Number(/cmdstat_get:calls=(\d+)/.exec(await admin.info('commandstats'))?.[1] ?? 0);
    const polled = await gets();
    const onB = send(b, '/wx/safe', push);
    await eventually(async () => ((await gets()) > polled ? true : undefined), 'instance b looking at the delivery in flight');
    const onA = send(a, '/wx/safe', push);
    backend.held.shift()!();
    const [fromB, fromA] = await Promise.all([onB, onA]);
    assert.equal(fromB.status, 200, fromB.text);
    assert.match(fromB.text, /^<xml><Encrypt>/);
    sameAnswer(fromA, fromB);
    await a.waitForLog((l) => l.msg === 'callback answered after its client had gone; the answer is kept for the retry', 'the first instance kept the answer');
    sameAnswer(await send(b, '/wx/safe', push), fromB);
    assert.equal(backend.times(msgId), 1);
  });

  test('over HTTP/2, a stream reset while the backend is slow: the upstream request finishes and the retry gets its answer', async () => {
    const msgId = newMsgId();
    const push = wecomPush(textMessage(0, msgId));
    backend.plan.push('hold');
    const session = await h2Connect(a.port, a.ca);
    try {
      const stream = session.request({ ':method': 'POST', ':path': `/wx/safe?${push.query.toString()}`, 'content-type': 'text/xml' });
      stream.on('error', () => undefined);
      stream.end(push.body);
      await waitUntil(() => (backend.held.length === 1 ? true : undefined), 'the backend holds the push');
      stream.close();
      await new Promise<void>((resolve) => stream.once('close', () => resolve()));
    } finally {
      session.close();
    }
    const kept = (): number => a.logs.filter((l) => l.msg === 'callback answered after its client had gone; the answer is kept for the retry' && l.route === 'wx-safe').length;
    const keptBefore = kept();
    backend.held.shift()!();
    await waitUntil(() => (kept() > keptBefore ? true : undefined), 'the answer kept after the reset', { describe: a.logText });
    const retry = await send(b, '/wx/safe', push);
    assert.equal(retry.status, 200, retry.text);
    assert.match(retry.text, /^<xml><Encrypt>/);
    sameAnswer(await send(a, '/wx/safe', push), retry);
    assert.equal(backend.times(msgId), 1);
  });

  test('a retry while the delivery is still in flight past the wait is 503 callback_in_flight; once answered, retries get the answer', async () => {
    const msgId = newMsgId();
    const push = wecomPush(textMessage(0, msgId));
    backend.plan.push('hold');
    const first = send(a, '/wx/safe', push);
    await waitUntil(() => (backend.held.length === 1 ? true : undefined), 'the backend holds the push');
    const inFlight = await scrape(b, 'wxgw_callback_replays_total{route="wx-safe",result="in_flight"}');
    const retry = await send(b, '/wx/safe', push);
    assert.equal(reason(retry), 'callback_in_flight', retry.text);
    assert.equal(retry.status, 503);
    assert.equal(await scrape(b, 'wxgw_callback_replays_total{route="wx-safe",result="in_flight"}'), inFlight + 1);
    backend.held.shift()!();
    const answered = await first;
    assert.equal(answered.status, 200, answered.text);
    sameAnswer(await send(b, '/wx/safe', push), answered);
    assert.equal(backend.times(msgId), 1);
  });

  test('one push sent to both instances at once is delivered once; both answers are the same', async () => {
    const msgId = newMsgId();
    const push = wecomPush(textMessage(0, msgId));
    const again = wecomPush(textMessage(0, msgId));
    const answers = await Promise.all([send(a, '/wx/safe', push), send(b, '/wx/safe', push), send(b, '/wx/safe', again), send(a, '/wx/safe', again)]);
    for (const res of answers) sameAnswer(res, answers[0]!);
    assert.equal(answers[0]!.status, 200);
    assert.equal(backend.times(msgId), 1);
  });

  test('WeChat Pay: a failed first delivery (500) is delivered by the retry once; replays and re-signed copies get the same answer', async () => {
    const id = `EV-${randomBytes(8).toString('hex')}`;
    const note = payNote(id);
    backend.plan.push('500');
    assert.equal((await send(a, '/pay/notify', note)).status, 500);
    const delivered = await send(b, '/pay/notify', note);
    assert.equal(delivered.status, 200, delivered.text);
    assert.equal(delivered.text, PAY_ANSWER);
    sameAnswer(await send(a, '/pay/notify', note), delivered);
    sameAnswer(await send(a, '/pay/notify', resigned(note)), delivered);
    sameAnswer(await send(b, '/pay/notify', resigned(note)), delivered);
    assert.equal(backend.times(id), 1);
  });

  test('WeChat Pay: past the hang-up the notification is delivered once; concurrent retries on both instances get its answer', async () => {
    const id = `EV-${randomBytes(8).toString('hex')}`;
    const note = payNote(id);
    backend.plan.push('hold');
    const first = hangingUp(a, '/pay/notify', note);
    await waitUntil(() => (backend.held.length === 1 ? true : undefined), 'the backend holds the notification');
    first.hangUp();
    const retries = [send(b, '/pay/notify', note), send(a, '/pay/notify', resigned(note))];
    backend.held.shift()!();
    for (const res of await Promise.all(retries)) {
      assert.equal(res.status, 200, res.text);
      assert.equal(res.text, PAY_ANSWER);
    }
    assert.equal(backend.times(id), 1);
  });

  test('WeChat Pay: distinct notifications sharing a nonce are all delivered', async () => {
    const shared = randomBytes(16).toString('hex').toUpperCase();
    const ids = [`EV-${randomBytes(8).toString('hex')}`, `EV-${randomBytes(8).toString('hex')}`];
    for (const id of ids) assert.equal((await send(a, '/pay/notify', payNote(id, { nonce: shared, timestamp: now() }))).status, 200);
    for (const id of ids) assert.equal(backend.times(id), 1);
  });
});
