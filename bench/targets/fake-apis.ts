// The fake WeChat API and the fake WeChat Pay API (test/helpers), in their own process, for
// bench/egress.bench.ts. argv: dir (where the Pay merchant key and APIv3 key are written).
// Tells the parent, over IPC, both URLs and what a direct caller needs: a valid access_token, and
// a signed Authorization for one Pay GET (Pay accepts a signature for 5 minutes, longer than a run).
import { createPrivateKey } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Formatter, Rsa } from 'wechatpay-axios-plugin';
import { startFakeWechatApi } from '../../test/helpers/fake-wechat-api.js';
import { newMerchant, newPlatformIdentity, startFakeWechatpayApi } from '../../test/helpers/fake-wechatpay-api.js';

const [dir, payPath] = process.argv.slice(2) as [string, string];
const APIV3_KEY = 'bench-apiv3-key-0123456789abcdef';

const wx = await startFakeWechatApi({ now: Date.now });
const merchant = newMerchant();
const pay = await startFakeWechatpayApi({ merchant, apiv3Key: APIV3_KEY, platforms: [newPlatformIdentity()] });
// The fakes keep every call for tests to read; a benchmark would only grow the heap with them.
setInterval(() => {
  wx.calls.length = 0;
  pay.calls.splice(0, pay.calls.length - 10);
}, 200).unref();

writeFileSync(join(dir, 'apiclient_key.pem'), merchant.privateKeyPem);
writeFileSync(join(dir, 'apiv3_key'), APIV3_KEY);
writeFileSync(join(dir, 'wx_secret'), wx.secret);

const res = await fetch(`${wx.url}/cgi-bin/stable_token`, { method: 'POST', body: JSON.stringify({ grant_type: 'client_credential', appid: wx.appid, secret: wx.secret }) });
const { access_token: token } = (await res.json()) as { access_token: string };

const timestamp = String(Formatter.timestamp());
const nonce = Formatter.nonce();
const signature = Rsa.sign(Formatter.request('GET', payPath, timestamp, nonce, ''), createPrivateKey(merchant.privateKeyPem));
const authorization = `WECHATPAY2-SHA256-RSA2048 mchid="${merchant.mchid}",nonce_str="${nonce}",signature="${signature}",timestamp="${timestamp}",serial_no="${merchant.serial}"`;

process.send?.({ wx: wx.url, appid: wx.appid, token, pay: pay.url, mchid: merchant.mchid, serial: merchant.serial, authorization });
