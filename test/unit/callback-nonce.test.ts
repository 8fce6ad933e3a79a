// A callback is recorded only once it got through: one refused for any reason, the store slow or
// down included, leaves its claim for WeChat's retry, and one delivered answers its replays from
// the store. Run against the memory store and a real redis-server, which is paused (CLIENT PAUSE)
// to be slow exactly when a claim is sent.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import type { CallbackOutcome } from '../../gateway/guards/callback-types.js';
import { CallbackLedger } from '../../gateway/guards/callback-replay.js';
import { compileWechatCallback } from '../../gateway/guards/wechat-callback.js';
import { compileWechatPayNotify } from '../../gateway/guards/wechatpay-notify.js';
import type { WechatConfig, WechatPayConfig } from '../../gateway/types/policy.js';
import { MemoryStore } from '../../gateway/store/memory-store.js';
import { RedisStore } from '../../gateway/store/redis-store.js';
import { StoreUnavailableError, type Store } from '../../gateway/store/store.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { payNotification, payNotificationBody, safePush, textMessage, type WechatAccount } from '../helpers/wechat-callback.js';

const pos = { file: 'test.yaml', line: 1, col: 1, path: 'routes[0]' };
const account: WechatAccount = { appid: 'wx1234567890abcdef', token: 'tok3nForNonceTests', encodingAesKey: 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG' };
const wechat: WechatConfig = {
  appid: account.appid,
  token: account.token,
  encoding_aes_key: account.encodingAesKey,
  api_base: new URL('https://api.weixin.qq.com'),
  api_timeout: 5000,
  pos,
};
const payKeys = generateKeyPairSync('rsa', { modulusLength: 2048 });
const PUB_KEY_ID = 'PUB_KEY_ID_0114232134912410000000000000';
const pay: WechatPayConfig = {
  keys: [{ serial: PUB_KEY_ID, public_key_pem: payKeys.publicKey.export({ type: 'spki', format: 'pem' }).toString(), file: 'pub.pem' }],
  pos,
};

function wxGuard(store: Store) {
  return compileWechatCallback({ decrypt: true, max_skew: 300_000, max_body: 65_536, pos }, wechat, store);
}

function kind(outcome: CallbackOutcome): string {
  if (outcome.kind === 'answer' && outcome.replayed) return `replayed:${outcome.replayed}`;
  return outcome.kind === 'refuse' ? `refuse:${outcome.reason}` : outcome.kind;
}

/** The upstream answered a forwarded callback: its delivery is committed with that answer. */
function delivered(outcome: CallbackOutcome, body = 'success'): void {
  assert.ok(outcome.kind === 'forward' && outcome.delivery, JSON.stringify(outcome));
  outcome.delivery.commit({ status: 200, contentType: 'text/plain', body: Buffer.from(body) });
}

/** A ledger whose retries never wait for a delivery in flight. */
function ledger(store: Store): CallbackLedger {
  return new CallbackLedger(store, { window: 60_000, pendingTtl: 60_000, waitMs: 0 });
}

/** Polls until `check` holds; the store's give-back runs in the background. */
async function eventually(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await check()) return;
    await new Promise((r) => setImmediate(r));
  }
  assert.fail(`never: ${what}`);
}

const DTD_MESSAGE = '<!DOCTYPE xml [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><ToUserName><![CDATA[gh_1]]></ToUserName><Content>&e;</Content></xml>';

function contract(name: string, open: () => Promise<Store>): void {
  test(`${name}: a claim is released only by its holder`, async () => {
    const store = await open();
    assert.equal(await store.claim('nonce:x', 60_000, 'holder-a'), true);
    assert.equal(await store.claim('nonce:x', 60_000, 'holder-b'), false);
    await store.release('nonce:x', 'holder-b');
    assert.equal(await store.claim('nonce:x', 60_000, 'holder-c'), false, "another holder's release removed the claim");
    await store.release('nonce:x', 'holder-a');
    assert.equal(await store.claim('nonce:x', 60_000, 'holder-c'), true);
    await store.release('nonce:never', 'holder-a');
  });

  test(`${name}: the ledger gives a released claim back, and answers a committed one from the store`, async () => {
    const l = ledger(await open());
    const first = await l.acquire({ request: 'cb:y', message: 'cb:m' });
    assert.ok(first.kind === 'owned');
    assert.equal((await l.acquire({ request: 'cb:y' })).kind, 'in_flight');
    assert.equal((await l.acquire({ request: 'cb:other', message: 'cb:m' })).kind, 'in_flight');
    first.delivery.release();
    let again: Awaited<ReturnType<CallbackLedger['acquire']>> | undefined;
    await eventually(async () => (again = await l.acquire({ request: 'cb:y', message: 'cb:m' })).kind === 'owned', 'the claim given back is claimable');
    assert.ok(again?.kind === 'owned');
    again.delivery.commit({ status: 200, contentType: 'text/xml', body: Buffer.from('<xml>reply</xml>') });
    const answer = { status: 200, contentType: 'text/xml', body: Buffer.from('<xml>reply</xml>') };
    await eventually(async () => (await l.acquire({ request: 'cb:y' })).kind === 'replay', 'the commit is in the store');
    assert.deepEqual(await l.acquire({ request: 'cb:y' }), { kind: 'replay', by: 'request', answer });
    assert.deepEqual(await l.acquire({ request: 'cb:resigned', message: 'cb:m' }), { kind: 'replay', by: 'message', answer });
    assert.deepEqual(await l.acquire({ request: 'cb:resigned' }), { kind: 'replay', by: 'request', answer }, 'a request answered by its message is recorded answered too');
  });

  test(`${name}: a retry waiting on a delivery in flight gets its answer, or takes the claim over when it is given back`, async () => {
    const l = new CallbackLedger(await open(), { window: 60_000, pendingTtl: 60_000, waitMs: 15_000 });
    const answer = { status: 200, contentType: 'text/plain', body: Buffer.from('success') };
    const first = await l.acquire({ request: 'cb:w1', message: 'cb:wm' });
    assert.ok(first.kind === 'owned');
    const sameRequest = l.acquire({ request: 'cb:w1', message: 'cb:wm' });
    const sameMessage = l.acquire({ request: 'cb:w2', message: 'cb:wm' });
    first.delivery.commit(answer);
    assert.deepEqual(await sameRequest, { kind: 'replay', by: 'request', answer });
    assert.deepEqual(await sameMessage, { kind: 'replay', by: 'message', answer });

    const failing = await l.acquire({ request: 'cb:w3', message: 'cb:wm3' });
    assert.ok(failing.kind === 'owned');
    const retry = l.acquire({ request: 'cb:w3', message: 'cb:wm3' });
    failing.delivery.release();
    const taken = await retry;
    assert.equal(taken.kind, 'owned', 'the retry of a delivery that failed is delivered');
  });

  test(`${name}: a DOCTYPE inside a decrypted message is refused, and its nonce is not used up`, async () => {
    const g = wxGuard(await open());
    for (const format of ['xml', 'json'] as const) {
      const nonce = `dtd-${format}`;
      const timestamp = Math.floor(Date.now() / 1000);
      assert.equal(kind(await g.check(safePush(account, DTD_MESSAGE, { format, nonce, timestamp }))), 'refuse:callback_malformed');
      assert.equal(kind(await g.check(safePush(account, '<!doctype x><xml/>', { format, nonce, timestamp }))), 'refuse:callback_malformed');
      const good = safePush(account, textMessage(), { format, nonce, timestamp });
      delivered(await g.check(good));
      assert.equal(kind(await g.check(good)), 'replayed:request');
    }
  });

  test(`${name}: a forwarded callback the server then refuses gives its nonce back`, async () => {
    const g = wxGuard(await open());
    const push = safePush(account, textMessage(), { nonce: 'given-back' });
    const first = await g.check(push);
    assert.ok(first.kind === 'forward' && first.delivery);
    // e.g. refused by the route's rate limit: WeChat's retry must not be a replay.
    first.delivery.release();
    let retried: CallbackOutcome | undefined;
    await eventually(async () => kind((retried = await g.check(push))) === 'forward', 'the retry is forwarded');
    delivered(retried!);
    assert.equal(kind(await g.check(push)), 'replayed:request');
  });
}

contract('memory', async () => new MemoryStore());

describe('redis', () => {
  let redis: TestRedis;
  let admin: Redis;
  const stores: RedisStore[] = [];
  const open = async (commandTimeoutMs = 2000, keyPrefix = `t${stores.length}:`): Promise<RedisStore> => {
    const store = new RedisStore({ url: redis.url, keyPrefix, commandTimeoutMs, logger: pino({ level: 'silent' }) });
    stores.push(store);
    assert.equal(await store.connect(5000), true);
    return store;
  };
  /** Holds every other client's commands for `ms`; returns once the pause is in force. */
  const pause = async (ms: number): Promise<void> => {
    assert.equal(await admin.call('CLIENT', 'PAUSE', String(ms)), 'OK');
  };
  const exists = async (key: string): Promise<boolean> => (await admin.exists(key)) === 1;

  before(async () => {
    redis = await startRedis();
    admin = new Redis(redis.url, { maxRetriesPerRequest: 1 });
  });
  after(async () => {
    await Promise.all(stores.map((s) => s.close()));
    admin.disconnect();
    await redis.stop();
  });

  contract('redis', () => open());

  test('redis: a claim that timed out but that Redis then recorded is given back (a bare claim would stay)', async () => {
    const store = await open(50, 'slow:');
    // Without the give-back: Redis runs the SET once the pause ends, and the nonce stays used.
    await pause(400);
    await assert.rejects(store.claim('nonce:bare', 60_000), StoreUnavailableError);
    await eventually(() => exists('slow:{nonce:bare}'), 'the bare claim lands once Redis resumes');

    await pause(400);
    const l = ledger(store);
    await assert.rejects(l.acquire({ request: 'cb:slow', message: 'cb:slow-msg' }), StoreUnavailableError);
    // The give-back was sent after the SET on the same connection, so it runs after it.
    const gone = async (): Promise<boolean> => !(await exists('slow:{cb:slow}')) && !(await exists('slow:{cb:slow-msg}'));
    await eventually(async () => (await admin.get('slow:{nonce:bare}')) !== null && (await gone()), 'the slow claims are gone');
    assert.equal((await l.acquire({ request: 'cb:slow', message: 'cb:slow-msg' })).kind, 'owned', 'the callback is still free');
  });

  test('redis: a push refused while the store was slow is accepted when WeChat retries it', async () => {
    const g = wxGuard(await open(50));
    const push = safePush(account, textMessage(), { nonce: 'slow-push' });
    await pause(400);
    await assert.rejects(g.check(push), StoreUnavailableError);
    await eventually(async () => {
      try {
        return kind(await g.check(push)) === 'forward';
      } catch (err) {
        if (err instanceof StoreUnavailableError) return false;
        throw err;
      }
    }, 'the retried push is forwarded');
  });

  test('redis: a Pay notification refused while the store was slow is accepted when retried', async () => {
    const g = compileWechatPayNotify({ decrypt: false, max_skew: 300_000, max_body: 65_536, pos }, pay, await open(50));
    const body = payNotificationBody({ algorithm: 'AEAD_AES_256_GCM', ciphertext: 'x', nonce: 'n', associated_data: 'a' });
    const note = payNotification(payKeys.privateKey, PUB_KEY_ID, body, { nonce: 'slow-pay-nonce' });
    await pause(400);
    await assert.rejects(g.check(note), StoreUnavailableError);
    await eventually(async () => {
      try {
        return kind(await g.check(note)) === 'forward';
      } catch (err) {
        if (err instanceof StoreUnavailableError) return false;
        throw err;
      }
    }, 'the retried notification is forwarded');
  });
});
