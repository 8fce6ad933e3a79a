// `wechatpay.egress`: checks and compilation. The listener signs with the merchant key whatever
// reaches it, so an address beyond loopback is a warning; the key is parsed here so that
// `wxgw validate` names a key OpenSSL refuses, without ever quoting it.
import { createPrivateKey } from 'node:crypto';
import { isLoopback, listenersClash, parseListen, parseUpstreamUrl } from './addresses.js';
import { isRecord } from './key-path.js';
import { show, type Reporter } from './report.js';
import { parseDuration, parseSize, type Parsed } from './units.js';
import { checkDuration, checkSize } from './value-checks.js';
import type { SourcePos, WechatPayEgressConfig } from '../types/policy.js';

export const PAY_EGRESS_DEFAULTS = {
  api_base: 'https://api.mch.weixin.qq.com',
  refresh: '12h',
  timeout: '10s',
  // What WeChat Pay's own SDKs allow an answer's Wechatpay-Timestamp.
  max_skew: '5m',
  max_body: '1mb',
} as const;

export interface RawPayEgress {
  listen: string;
  mchid: string;
  serial_no: string;
  private_key: string;
  api_base?: string;
  download_certificates?: boolean;
  refresh?: string;
  timeout?: string;
  max_skew?: string;
  max_body?: string;
}

/** Downloading is the default unless the merchant is on Pay's public-key mode. */
export function downloadsCertificates(egress: { download_certificates?: unknown }, publicKeys: unknown): boolean {
  if (typeof egress.download_certificates === 'boolean') return egress.download_certificates;
  return !(Array.isArray(publicKeys) && publicKeys.length > 0);
}

/** Checks `wechatpay.egress` beyond the schema; `pay` is the whole `wechatpay` section. */
export function checkPayEgress(report: Reporter, pay: Record<string, unknown>, server: unknown): void {
  const egress = pay.egress;
  if (!isRecord(egress)) return;
  const at = ['wechatpay', 'egress'];
  if (typeof egress.listen === 'string') {
    const parsed = parseListen(egress.listen);
    if (!parsed.ok) report.error([...at, 'listen'], `${show(egress.listen)} ${parsed.why}`);
    else {
      if (!isLoopback(parsed.value.host)) {
        report.warn(
          [...at, 'listen'],
          `the Pay egress signs every call that reaches it with the merchant key: anyone who can reach ${show(egress.listen)} can pay, refund and transfer in the merchant's name; listen on 127.0.0.1 (or a pod-local address a NetworkPolicy keeps private)`,
        );
      }
      for (const name of ['https', 'http', 'admin']) {
        const other = isRecord(server) && isRecord(server[name]) ? server[name].listen : undefined;
        if (typeof other !== 'string') continue;
        const theirs = parseListen(other);
        if (theirs.ok && listenersClash(theirs.value, parsed.value)) {
          report.error([...at, 'listen'], `port ${parsed.value.port} is already taken by server.${name}.listen (line ${report.line(['server', name, 'listen'])}) on an overlapping address`);
        }
      }
    }
  }
  if (typeof egress.private_key === 'string') {
    let why: string | undefined;
    try {
      const key = createPrivateKey(egress.private_key);
      if (key.asymmetricKeyType !== 'rsa') why = `is a ${key.asymmetricKeyType} key; WeChat Pay merchant keys are RSA (apiclient_key.pem)`;
    } catch {
      why = 'is not a PEM private key: give the apiclient_key.pem from the merchant platform, e.g. private_key: ${file:/run/secrets/apiclient_key.pem}';
    }
    if (why) report.error([...at, 'private_key'], why);
  }
  if (typeof egress.api_base === 'string') {
    const parsed = parseUpstreamUrl(egress.api_base);
    if (!parsed.ok) report.error([...at, 'api_base'], `${show(egress.api_base)} ${parsed.why}`);
    else if (parsed.value.protocol === 'http:' && !isLoopback(parsed.value.hostname.replace(/^\[|\]$/g, ''))) {
      report.warn([...at, 'api_base'], 'is plain http to another machine: answers are still verified, but requests and answers travel unencrypted; use https');
    }
  }
  const keys = (Array.isArray(pay.platform_certificates) ? pay.platform_certificates.length : 0) + (Array.isArray(pay.public_keys) ? pay.public_keys.length : 0);
  if (downloadsCertificates(egress, pay.public_keys)) {
    if (pay.apiv3_key === undefined) {
      report.error(at, 'downloads the platform certificates, which come encrypted with the APIv3 key: add `wechatpay.apiv3_key`, or set download_certificates: false and name the keys in platform_certificates or public_keys', {
        anchor: 'key',
      });
    }
  } else if (keys === 0) {
    report.error([...at, 'download_certificates'], 'is off and the section names no platform_certificates or public_keys: no answer of WeChat Pay could be verified');
  }
  for (const key of ['refresh', 'timeout', 'max_skew'] as const) checkDuration(report, egress[key], [...at, key], true);
  checkSize(report, egress.max_body, [...at, 'max_body']);
}

function sure<T>(parsed: Parsed<T>): T {
  if (!parsed.ok) throw new Error(`policy value passed validation but does not parse: ${parsed.why}`);
  return parsed.value;
}

export function payEgressConfig(e: RawPayEgress, publicKeys: unknown, pos: SourcePos): WechatPayEgressConfig {
  return {
    listen: sure(parseListen(e.listen)),
    mchid: e.mchid,
    serial_no: e.serial_no.toUpperCase(),
    private_key: e.private_key,
    api_base: sure(parseUpstreamUrl(e.api_base ?? PAY_EGRESS_DEFAULTS.api_base)),
    download_certificates: downloadsCertificates(e, publicKeys),
    refresh: sure(parseDuration(e.refresh ?? PAY_EGRESS_DEFAULTS.refresh)),
    timeout: sure(parseDuration(e.timeout ?? PAY_EGRESS_DEFAULTS.timeout)),
    max_skew: sure(parseDuration(e.max_skew ?? PAY_EGRESS_DEFAULTS.max_skew)),
    max_body: sure(parseSize(e.max_body ?? PAY_EGRESS_DEFAULTS.max_body)),
    pos,
  };
}
