// The cost of the egress hops, in one run: WeChat API calls straight to the fake WeChat API (the
// backend holding a token itself) against the same calls through wxgw's egress listener (cached
// token set in the query, budget counted in the store, circuit, forwarded over a keep-alive pool);
// and WeChat Pay calls straight to the fake Pay API with a pre-signed Authorization against the
// same calls through the Pay egress (each request signed with the merchant key, each answer's
// Wechatpay-Signature verified). wxgw runs in its own process, both fakes in another
// (bench/targets/fake-apis.ts), autocannon and the one-connection client in this one. Targets
// run in interleaved rounds (bench/lib.ts measure) and the medians are reported; the CPU column
// is of the process that answers the row's requests: the fake for direct rows, wxgw for egress rows.
//   node --import tsx bench/egress.bench.ts
//   BENCH_ROUNDS=3 BENCH_SECONDS=4 node --import tsx bench/egress.bench.ts
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { ensureDevChain } from '../gateway/tls/devchain.js';
import { freePort } from '../test/helpers/ports.js';
import { benchPolicy, connections, fixedRate, measure, rounds, seconds, startTs, target, waitReady, type Result } from './lib.js';

const WX_PATH = '/cgi-bin/user/info?openid=o-bench&lang=zh_CN';
const PAY_PATH = '/v3/pay/transactions/out-trade-no/BENCH1?mchid=1900000109';

interface Fakes {
  wx: string;
  appid: string;
  token: string;
  pay: string;
  mchid: string;
  serial: string;
  authorization: string;
}

function fakesReady(child: ChildProcess): Promise<Fakes> {
  return new Promise((resolve, reject) => {
    child.once('message', (m) => resolve(m as Fakes));
    child.once('exit', (code) => reject(new Error(`the fake APIs exited with ${code} before they were ready`)));
  });
}

/** Polls until `url` answers 200: the Pay egress has downloaded its platform certificates. */
async function answers(url: string): Promise<void> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const res = await fetch(url).catch(() => undefined);
    const status = res?.status;
    await res?.arrayBuffer();
    if (status === 200) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} never answered 200`);
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'wxgw-bench-egress-'));
  const chain = await ensureDevChain(join(dir, 'certs'));
  const ca = readFileSync(chain.root);
  const children: ChildProcess[] = [];
  let results: Result[] = [];
  try {
    const fakeProcess = startTs('targets/fake-apis.ts', [dir, PAY_PATH]);
    children.push(fakeProcess);
    const fakes = await fakesReady(fakeProcess);
    const [https, egress, payEgress] = [await freePort(), await freePort(), await freePort()];
    const policy = join(dir, 'gateway.yaml');
    writeFileSync(
      policy,
      benchPolicy({
        port: https,
        chain,
        upstream: 'http://127.0.0.1:9',
        server: [`  egress: { listen: "127.0.0.1:${egress}" }`],
        sections: [
          'wechat:',
          `  appid: ${fakes.appid}`,
          `  app_secret: \${file:${join(dir, 'wx_secret')}}`,
          `  api_base: "${fakes.wx}"`,
          '  quotas:',
          `    "${WX_PATH.split('?')[0]}": { per_day: 1000000000 }`,
          'wechatpay:',
          `  apiv3_key: \${file:${join(dir, 'apiv3_key')}}`,
          '  egress:',
          `    listen: "127.0.0.1:${payEgress}"`,
          `    mchid: "${fakes.mchid}"`,
          `    serial_no: ${fakes.serial}`,
          `    private_key: \${file:${join(dir, 'apiclient_key.pem')}}`,
          `    api_base: ${fakes.pay}`,
          '    timeout: 5s',
        ],
        tail: ['defaults: { allow: any }'],
      }),
    );
    const wxgw = startTs('targets/wxgw.ts', [policy, join(dir, 'wxgw.log')]);
    children.push(wxgw);
    await waitReady(wxgw, 'wxgw');
    await answers(`http://127.0.0.1:${payEgress}${PAY_PATH}`);
    const sep = WX_PATH.includes('?') ? '&' : '?';
    const targets = [
      target('WeChat API direct (backend holds the token)', `${fakes.wx}${WX_PATH}${sep}access_token=${fakes.token}`, fakeProcess.pid),
      target('WeChat API through the egress', `http://127.0.0.1:${egress}${WX_PATH}`, wxgw.pid),
      target('Pay API direct (pre-signed, answer not verified)', `${fakes.pay}${PAY_PATH}`, fakeProcess.pid, { authorization: fakes.authorization, 'user-agent': 'bench', accept: 'application/json' }),
      target('Pay API through the Pay egress (signed + verified)', `http://127.0.0.1:${payEgress}${PAY_PATH}`, wxgw.pid, { accept: 'application/json' }),
    ];
    results = await measure(targets, ca);
  } finally {
    for (const c of children) c.kill();
  }
  const [wxDirect, wxEgress, payDirect, payVia] = results as [Result, Result, Result, Result];
  const row = (r: Result, base: Result): string =>
    `| ${r.name} | ${Math.round(r.rps)} | ${r.p50} | ${r.p99} | ${r.solo50} | ${r.solo99} | ${r.cpuUs ?? '-'} | ${(r.rps / base.rps).toFixed(2)}x |`;
  const lines = [
    `egress hop: ${connections} connections, ${rounds} rounds x ${seconds} s, CPU at ${fixedRate}/s`,
    '',
    `| target | calls/s | p50 ms | p99 ms | 1-conn p50 µs | 1-conn p99 µs | CPU µs/call at ${fixedRate}/s | vs direct |`,
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    row(wxDirect, wxDirect),
    row(wxEgress, wxDirect),
    row(payDirect, payDirect),
    row(payVia, payDirect),
    '',
    `WeChat egress hop: +${wxEgress.solo50 - wxDirect.solo50} µs one-connection p50; Pay egress hop: +${payVia.solo50 - payDirect.solo50} µs.`,
  ];
  console.log(lines.join('\n'));
}

await main();
