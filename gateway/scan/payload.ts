// Pattern 4 from outside: what the JSON answers of the given paths give away, found by key (the
// names compared folded, as mask rules compare them: masking/names.ts) and by shape (the
// gateway's own detectors: masking/detectors.ts). Values are masked before they reach the report.
//
//   findSensitive(json) -> Hit[]
//   judgePayload(report, url, answer)

import { DETECTOR_ORDER, detect } from '../masking/detectors.js';
import { foldName } from '../masking/names.js';
import { partialMask } from '../masking/values.js';
import type { Answer } from './prober.js';
import type { ReportBuilder } from './report.js';

/** Never meant for a client at all: WeChat's session key, the cross-app id, credentials. */
const SECRET_KEYS = new Set(['sessionkey', 'unionid', 'password', 'passwd', 'appsecret', 'secret', 'accesstoken'].map(foldName));
/** Personal data that a client may see only masked. */
const PERSONAL_KEYS = new Set(
  ['phone', 'mobile', 'phone_number', 'pure_phone_number', 'tel', 'idcard', 'id_card', 'id_number', 'id_no', 'bank_card', 'card_no', 'email'].map(foldName),
);

export interface Hit {
  /** `$.data.addresses[0].phone` */
  path: string;
  /** Why: `key session_key`, `shape cn_mobile`. */
  why: string;
  /** The value as the report shows it: masked. */
  shown: string;
  secret: boolean;
}

function masked(text: string): boolean {
  return text.includes('*') || text === '';
}

function hide(text: string): string {
  return `${partialMask(text, { keep_start: Math.min(2, Math.floor(text.length / 4)), keep_end: 0, char: '*' }).slice(0, 8)}… (${text.length} characters)`;
}

function shapeOf(text: string): string | undefined {
  for (const d of DETECTOR_ORDER) {
    const m = detect([d], text);
    if (m !== undefined) return d;
  }
  return undefined;
}

export function findSensitive(value: unknown, path = '$', key?: string): Hit[] {
  if (Array.isArray(value)) return value.flatMap((v, i) => findSensitive(v, `${path}[${i}]`));
  if (value !== null && typeof value === 'object') {
    return Object.entries(value as Record<string, unknown>).flatMap(([k, v]) => findSensitive(v, /^[A-Za-z_$][\w$]*$/.test(k) ? `${path}.${k}` : `${path}[${JSON.stringify(k)}]`, k));
  }
  if (typeof value !== 'string' && typeof value !== 'number') return [];
  const text = String(value);
  const folded = key === undefined ? '' : foldName(key);
  if (SECRET_KEYS.has(folded) && text !== '') return [{ path, why: `key ${key}`, shown: hide(text), secret: true }];
  const shape = shapeOf(text);
  if (shape) return [{ path, why: `shape ${shape}${PERSONAL_KEYS.has(folded) ? `, key ${key}` : ''}`, shown: detect(DETECTOR_ORDER, text)!, secret: false }];
  if (PERSONAL_KEYS.has(folded) && !masked(text)) return [{ path, why: `key ${key}`, shown: hide(text), secret: false }];
  return [];
}

function isJson(a: Answer): boolean {
  const type = a.headers['content-type'] ?? '';
  return /\bjson\b/i.test(type) || /^\s*[[{]/.test(a.body.subarray(0, 64).toString('latin1'));
}

export function parseJson(a: Answer): unknown {
  if (!isJson(a)) return undefined;
  try {
    return JSON.parse(a.body.toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}

/** Lists at most this many hits per answer; the count says how many there were. */
const SHOWN_HITS = 12;

export function judgePayload(report: ReportBuilder, url: string, answer: Answer): Hit[] {
  if (answer.status >= 400) {
    // A refusal's body says nothing about the data behind it, which the scanner (sending no
    // credentials) cannot reach: no pass either way.
    report.add({ rule: 'WX4-SENSITIVE-DATA', level: 'note', message: `GET ${url} answered ${answer.status}: the data behind it was not examined (the scan sends no credentials)`, evidence: [], url });
    return [];
  }
  const json = parseJson(answer);
  if (json === undefined) {
    report.add({ rule: 'WX4-SENSITIVE-DATA', level: 'note', message: `GET ${url} answered ${answer.status} without a JSON body: nothing to examine`, evidence: [], url });
    return [];
  }
  const hits = findSensitive(json);
  if (hits.length === 0) {
    report.add({ rule: 'WX4-SENSITIVE-DATA', level: 'pass', message: `no session_key, unionid or unmasked personal data in the answer of ${url}`, evidence: [], url });
    return hits;
  }
  const secrets = hits.filter((h) => h.secret).length;
  const evidence = hits.slice(0, SHOWN_HITS).map((h) => `${h.path} (${h.why}): ${h.shown}`);
  if (hits.length > SHOWN_HITS) evidence.push(`… and ${hits.length - SHOWN_HITS} more`);
  const what = [secrets > 0 && `${secrets} secret field(s)`, hits.length - secrets > 0 && `${hits.length - secrets} unmasked personal value(s)`].filter(Boolean).join(' and ');
  report.add({ rule: 'WX4-SENSITIVE-DATA', level: 'error', message: `the answer of ${url} carries ${what}`, evidence, url });
  return hits;
}
