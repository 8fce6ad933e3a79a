// Pattern 5, callbacks: a WeChat message-push URL must answer only WeChat, which signs every
// request with the shared Token. Two probes, both with a signature no Token can produce:
//   GET  ?signature=&timestamp=&nonce=&echostr=   accepted = 2xx with the echostr echoed (the
//        URL-verification handshake passes for anyone, so anyone can register it)
//   POST the same with a stale timestamp and a harmless text message
//        accepted = a 2xx answer (the backend's normal answer: it processed a forged message)
//
//   probeCallback(prober, report, path, now)

import { randomBytes } from 'node:crypto';
import { failed, type Prober } from './prober.js';
import type { ReportBuilder } from './report.js';

/** Forty zeros: the shape of a SHA-1 hex signature, and never a real one. */
const BAD_SIGNATURE = '0'.repeat(40);

/** An hour before now: older than any replay window (wxgw's default is 300 s). */
const STALE_S = 3600;

function snippet(body: Buffer): string {
  const text = body.toString('utf8', 0, 120).replace(/\s+/g, ' ');
  return JSON.stringify(body.length > 120 ? `${text}…` : text);
}

export async function probeCallback(prober: Prober, report: ReportBuilder, path: string, now: Date): Promise<void> {
  const url = prober.url(path);
  const ts = Math.floor(now.getTime() / 1000);
  const nonce = randomBytes(6).toString('hex');
  const echostr = `wxgwscan${randomBytes(8).toString('hex')}`;
  const sep = path.includes('?') ? '&' : '?';

  const get = `${path}${sep}signature=${BAD_SIGNATURE}&timestamp=${ts}&nonce=${nonce}&echostr=${echostr}`;
  const g = await prober.send({ method: 'GET', path: get });
  if (!failed(g)) {
    const echoed = g.status >= 200 && g.status < 300 && g.body.toString('utf8').includes(echostr);
    const evidence = [`GET ${prober.url(get)} (signature of forty zeros) -> ${g.status} ${snippet(g.body)}`];
    report.add(
      echoed
        ? { rule: 'WX5-CALLBACK-UNVERIFIED', level: 'error', message: 'the URL check with a forged signature is accepted: the echostr came back', evidence, url }
        : { rule: 'WX5-CALLBACK-UNVERIFIED', level: 'pass', message: `the URL check with a forged signature is not accepted (${g.status}, echostr not echoed)`, evidence, url },
    );
  }

  const post = `${path}${sep}signature=${BAD_SIGNATURE}&timestamp=${ts - STALE_S}&nonce=${nonce}`;
  const body =
    `<xml><ToUserName><![CDATA[wxgw-scan]]></ToUserName><FromUserName><![CDATA[wxgw-scan]]></FromUserName>` +
    `<CreateTime>${ts - STALE_S}</CreateTime><MsgType><![CDATA[text]]></MsgType>` +
    `<Content><![CDATA[wxgw scan: forged signature, please ignore]]></Content><MsgId>1</MsgId></xml>`;
  const p = await prober.send({ method: 'POST', path: post, body, headers: { 'content-type': 'text/xml' } });
  if (!failed(p)) {
    const evidence = [`POST ${prober.url(post)} (forged signature, timestamp an hour old) -> ${p.status} ${snippet(p.body)}`];
    report.add(
      p.status >= 200 && p.status < 300
        ? { rule: 'WX5-CALLBACK-UNVERIFIED', level: 'error', message: `a push with a forged signature and a stale timestamp is accepted (${p.status})`, evidence, url }
        : { rule: 'WX5-CALLBACK-UNVERIFIED', level: 'pass', message: `a push with a forged signature and a stale timestamp is refused (${p.status})`, evidence, url },
    );
  }
}
