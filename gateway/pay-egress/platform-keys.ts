// The keys Pay's answers are verified with: those the policy names (platform_certificates,
// public_keys: pinned) and, unless the merchant is on public-key mode, the platform certificates
// downloaded from /v3/certificates at start, every `refresh`, and when an answer names a serial
// not known yet (one download at a time, at most one such per UNKNOWN_SERIAL_COOLDOWN_MS, so a
// stream of bad serials cannot turn into a stream of downloads).
import type { KeyObject } from 'node:crypto';
import { CertificatesError, parsePlatformCertificates, type PlatformCertificate } from '../wechat/pay-sign.js';
import { verifyPaySignature } from '../wechat/pay-notify.js';
import type { PayAnswer } from './pay-client.js';

export const UNKNOWN_SERIAL_COOLDOWN_MS = 60_000;

export type Trigger = 'start' | 'schedule' | 'unknown_serial';

export type Unverified = 'missing_headers' | 'stale_timestamp' | 'unknown_serial' | 'bad_signature';

export interface KeyDeps {
  /** Keys the policy in force names, by upper-case serial or PUB_KEY_ID_. */
  pinned(): ReadonlyMap<string, KeyObject>;
  /** Whether the policy in force downloads; the APIv3 keys to decrypt with, current first. */
  downloads(): { apiv3Keys: Buffer[]; maxSkew: number } | undefined;
  /** A signed GET /v3/certificates. */
  fetchCertificates(): Promise<PayAnswer>;
  now(): number;
  refreshed(trigger: Trigger, result: 'ok' | 'failed', detail: { serials?: string[]; error?: string }): void;
}

function header(answer: PayAnswer, name: string): string | undefined {
  const v = answer.headers[name];
  return typeof v === 'string' ? v : undefined;
}

/** Checks an answer's Wechatpay-* headers and signature with `lookup`; undefined when it verifies. */
export async function checkAnswer(answer: PayAnswer, maxSkew: number, now: number, lookup: (serial: string) => Promise<KeyObject | undefined> | KeyObject | undefined): Promise<Unverified | undefined> {
  const timestamp = header(answer, 'wechatpay-timestamp');
  const nonce = header(answer, 'wechatpay-nonce');
  const signature = header(answer, 'wechatpay-signature');
  const serial = header(answer, 'wechatpay-serial');
  if (!timestamp || !nonce || !signature || !serial || !/^[0-9]{1,12}$/.test(timestamp)) return 'missing_headers';
  if (Math.abs(now - Number(timestamp) * 1000) > maxSkew) return 'stale_timestamp';
  const key = await lookup(serial.toUpperCase());
  if (!key) return 'unknown_serial';
  return verifyPaySignature(key, timestamp, nonce, answer.body, signature) ? undefined : 'bad_signature';
}

export class PlatformKeys {
  private downloaded = new Map<string, PlatformCertificate>();
  private inflight: Promise<void> | undefined;
  private lastOnDemand = Number.NEGATIVE_INFINITY;

  constructor(private readonly deps: KeyDeps) {}

  /** The key for a serial, downloading once more when it is unknown and downloading is on. */
  async keyFor(serial: string): Promise<KeyObject | undefined> {
    if (this.inflight) await this.inflight;
    const known = this.known(serial);
    if (known || !this.deps.downloads()) return known;
    const now = this.deps.now();
    if (now - this.lastOnDemand < UNKNOWN_SERIAL_COOLDOWN_MS) return undefined;
    this.lastOnDemand = now;
    await this.refresh('unknown_serial');
    return this.known(serial);
  }

  /** One download at a time: callers during one wait for it. Never throws; failures are reported. */
  refresh(trigger: Trigger): Promise<void> {
    this.inflight ??= this.download(trigger).finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  private known(serial: string): KeyObject | undefined {
    const pinned = this.deps.pinned().get(serial);
    if (pinned) return pinned;
    const cert = this.downloaded.get(serial);
    return cert && cert.notAfter > this.deps.now() ? cert.key : undefined;
  }

  private async download(trigger: Trigger): Promise<void> {
    const how = this.deps.downloads();
    if (!how) return;
    try {
      const answer = await this.deps.fetchCertificates();
      if (answer.status !== 200) throw new CertificatesError(`WeChat Pay answered HTTP ${answer.status}`);
      const now = this.deps.now();
      let certs: PlatformCertificate[] | undefined;
      let last: unknown;
      for (const key of how.apiv3Keys) {
        try {
          certs = parsePlatformCertificates(answer.body, key, now);
          break;
        } catch (err) {
          last = err;
        }
      }
      if (!certs) throw last instanceof Error ? last : new CertificatesError('no APIv3 key');
      const fresh = new Map(certs.map((c) => [c.serial, c]));
      // On first download the answer can only be checked with a certificate it brings itself;
      // a pinned or already trusted key is preferred. The AEAD tag is what proves the certificates.
      const why = await checkAnswer(answer, how.maxSkew, now, (serial) => this.known(serial) ?? fresh.get(serial)?.key);
      if (why) throw new CertificatesError(`the /v3/certificates answer did not verify (${why})`);
      this.downloaded = fresh;
      this.deps.refreshed(trigger, 'ok', { serials: [...fresh.keys()] });
    } catch (err) {
      this.deps.refreshed(trigger, 'failed', { error: (err as Error).message });
    }
  }
}
