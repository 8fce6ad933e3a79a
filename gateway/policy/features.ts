// Checks of the stateful features across sections: the store, the WeChat account and Pay keys,
// identity, mask profiles, and what routes ask of them (rate limits, masks, identity, signed
// callbacks). A route that relies on a section the policy lacks is an error, never a silent no-op.
// Secret values are checked for shape but never quoted.

import { X509Certificate, createPublicKey } from 'node:crypto';
import { parseRedisNode, parseRedisUrl, parseUpstreamUrl } from './addresses.js';
import { resolveFrom, readText } from './files.js';
import { isRecord, type KeyPath } from './key-path.js';
import { checkMaskChoice } from './mask-choice.js';
import { parseMaskTarget } from './mask-targets.js';
import { FRAMING_HEADERS } from '../masking/header-rules.js';
import { neverMatches } from './match-path.js';
import { show, type Reporter } from './report.js';
import { closest } from './suggest.js';
import { checkDuration, checkSize } from './value-checks.js';
import { checkPayEgress, downloadsCertificates } from './pay-egress.js';
import { LOGIN_RATE_LIMIT } from './build.js';
import { checkEgress } from './egress-checks.js';

/** RFC 7518 asks HMAC keys to be at least as long as the hash output: 32 bytes for HS256. */
const MIN_HMAC_BYTES = 32;

type Data = Record<string, unknown>;

class FeatureChecker {
  private readonly files: { at: KeyPath; file: string; kind: KeyFileKind }[] = [];

  constructor(
    private readonly data: Data,
    private readonly baseDir: string,
    private readonly report: Reporter,
  ) {}

  private section(key: string): Data | undefined {
    const value = this.data[key];
    return isRecord(value) ? value : undefined;
  }

  private duration(value: unknown, at: KeyPath): void {
    checkDuration(this.report, value, at, true);
  }

  private size(value: unknown, at: KeyPath): void {
    checkSize(this.report, value, at);
  }

  private hmacKey(value: unknown, at: KeyPath, what: string): void {
    if (typeof value === 'string' && value !== '' && Buffer.byteLength(value) < MIN_HMAC_BYTES) {
      this.report.error(at, `is too short for ${what}: use at least ${MIN_HMAC_BYTES} random bytes, e.g. the output of \`openssl rand -base64 32\``);
    }
  }

  /**
   * A `previous` block: its `until` must be a real time, and once it has passed the values are
   * accepted no more, which `wxgw validate` says so they get removed. Returns the block.
   */
  private previous(value: unknown, at: KeyPath, keys: readonly string[]): Record<string, unknown> | undefined {
    if (!isRecord(value)) return undefined;
    if (!keys.some((k) => value[k] !== undefined)) {
      this.report.warn(at, `names no previous value: add ${keys.map((k) => `\`${k}\``).join(' or ')}, or remove it`, { anchor: 'key' });
    }
    if (typeof value.until === 'string') {
      const until = Date.parse(value.until);
      if (Number.isNaN(until)) this.report.error([...at, 'until'], `${show(value.until)} is not a time: write one such as 2026-12-08T00:00:00Z`);
      else if (until <= Date.now()) {
        this.report.warn([...at, 'until'], `${value.until} has passed: the previous values are no longer accepted; remove \`previous\` (and the secrets it reads)`);
      }
    }
    return value;
  }

  /**
   * The app a route or the login names: the wechat section itself without a name, the entry of
   * wechat.apps with one, null (reported at `at`) for a name wechat.apps does not have.
   */
  private wechatApp(wechat: Data | undefined, name: string | undefined, at: KeyPath): Data | undefined | null {
    if (name === undefined) return wechat;
    const apps = wechat && isRecord(wechat.apps) ? wechat.apps : {};
    const app = apps[name];
    if (isRecord(app)) return app;
    const near = closest(name, Object.keys(apps));
    this.report.error(at, `${show(name)} is not an app under wechat.apps${near ? `; did you mean \`${near}\`?` : ''}`);
    return null;
  }

  store(): void {
    const store = this.section('store');
    if (!store) return;
    const kind = store.kind ?? 'memory';
    // Exactly one way to reach Redis: one server, a cluster, or the sentinels of a master.
    const modes = (['redis_url', 'cluster', 'sentinels'] as const).filter((k) => store[k] !== undefined);
    if (kind === 'redis' && modes.length === 0) {
      this.report.error(['store', 'kind'], '`redis` needs `redis_url` (one server), `cluster` or `sentinels`, e.g. `redis_url: ${REDIS_URL}`', {
        missing: [['store', 'redis_url']],
      });
    }
    if (kind === 'redis' && modes.length > 1) {
      for (const k of modes.slice(1)) {
        this.report.error(['store', k], `conflicts with \`${modes[0]}\`: name the store's Redis one way only (redis_url for one server, cluster, or sentinels)`);
      }
    }
    if (kind === 'memory') {
      for (const k of modes) {
        this.report.warn(['store', k], 'is ignored: store.kind is memory, so counters live in this process only; set `kind: redis` to share them');
      }
    }
    if (typeof store.redis_url === 'string') {
      const parsed = parseRedisUrl(store.redis_url);
      if (!parsed.ok) this.report.error(['store', 'redis_url'], parsed.why);
    }
    for (const [section, list] of [
      ['cluster', 'nodes'],
      ['sentinels', 'hosts'],
    ] as const) {
      const block = store[section];
      if (!isRecord(block) || !Array.isArray(block[list])) continue;
      const seen = new Map<string, number>();
      block[list].forEach((entry: unknown, i: number) => {
        if (typeof entry !== 'string') return;
        const parsed = parseRedisNode(entry);
        if (!parsed.ok) {
          // Where the schema's pattern already failed, the loader keeps only the schema's word.
          this.report.error(['store', section, list, i], `${show(entry)} ${parsed.why}`);
          return;
        }
        const id = `${parsed.value.host}:${parsed.value.port}`;
        const first = seen.get(id);
        if (first !== undefined) this.report.warn(['store', section, list, i], `repeats ${list}[${first}] (${id}): list each one once`);
        else seen.set(id, i);
      });
    }
    this.duration(store.command_timeout, ['store', 'command_timeout']);
    if (isRecord(store.delivery_queue)) this.duration(store.delivery_queue.takeover_after, ['store', 'delivery_queue', 'takeover_after']);
  }

  wechat(): void {
    const wechat = this.section('wechat');
    if (wechat) {
      if (typeof wechat.api_base === 'string') {
        const parsed = parseUpstreamUrl(wechat.api_base);
        if (!parsed.ok) this.report.error(['wechat', 'api_base'], `${show(wechat.api_base)} ${parsed.why}`);
      }
      this.duration(wechat.api_timeout, ['wechat', 'api_timeout']);
      const apps: [KeyPath, Data][] = [[['wechat'], wechat]];
      if (isRecord(wechat.apps)) for (const [name, app] of Object.entries(wechat.apps)) if (isRecord(app)) apps.push([['wechat', 'apps', name], app]);
      const secrets: [KeyPath, Data][] = [];
      for (const [at, app] of apps) {
        // WeCom ids start with ww or tj (old corp ids with wx too); WeChat AppIDs always with wx.
        if ((app.kind === 'miniprogram' || app.kind === 'official') && typeof app.appid === 'string' && !app.appid.startsWith('wx')) {
          this.report.error([...at, 'appid'], `is a WeCom corp or suite id, but \`kind\` says ${String(app.kind)}: a mini-program's or official account's AppID starts with wx`);
        }
      }
      for (const [at, app] of apps) secrets.push([at, app], [[...at, 'previous'], this.previous(app.previous, [...at, 'previous'], ['token', 'encoding_aes_key']) ?? {}]);
      for (const [at, w] of secrets) {
        if (typeof w.token === 'string' && !/^[A-Za-z0-9]{3,32}$/.test(w.token)) {
          this.report.error([...at, 'token'], 'is not a message-push Token: WeChat accepts 3 to 32 letters and digits');
        }
        if (typeof w.encoding_aes_key === 'string' && !/^[A-Za-z0-9+/]{43}$/.test(w.encoding_aes_key)) {
          this.report.error([...at, 'encoding_aes_key'], 'is not an EncodingAESKey: WeChat gives 43 letters and digits (copy it without a trailing `=`)');
        }
      }
    }
    const pay = this.section('wechatpay');
    if (!pay) return;
    const previousPay = this.previous(pay.previous, ['wechatpay', 'previous'], ['apiv3_key']);
    for (const [at, p] of [[['wechatpay'], pay], [['wechatpay', 'previous'], previousPay ?? {}]] as const) {
      if (typeof p.apiv3_key === 'string' && Buffer.byteLength(p.apiv3_key) !== 32) {
        this.report.error([...at, 'apiv3_key'], 'is not an APIv3 key: WeChat Pay APIv3 keys are exactly 32 characters');
      }
    }
    const certs = Array.isArray(pay.platform_certificates) ? pay.platform_certificates : [];
    const keys = Array.isArray(pay.public_keys) ? pay.public_keys : [];
    // The egress may download its keys; notify routes still need configured ones (checked there).
    const egressDownloads = isRecord(pay.egress) && downloadsCertificates(pay.egress, pay.public_keys);
    if (certs.length === 0 && keys.length === 0 && !egressDownloads) {
      this.report.error(['wechatpay'], 'names no verification key: add platform_certificates or public_keys, or no notification can ever be verified', {
        anchor: 'key',
      });
    }
    certs.forEach((file: unknown, i) => {
      if (typeof file === 'string') this.files.push({ at: ['wechatpay', 'platform_certificates', i], file, kind: 'pay_certificate' });
    });
    keys.forEach((entry: unknown, i) => {
      if (isRecord(entry) && typeof entry.file === 'string') this.files.push({ at: ['wechatpay', 'public_keys', i, 'file'], file: entry.file, kind: 'pay_public_key' });
    });
    checkPayEgress(this.report, pay, this.data.server);
  }

  identity(upstreams: string[], profiles: string[]): void {
    const identity = this.section('identity');
    if (!identity) return;
    const login = isRecord(identity.login) ? identity.login : undefined;
    const session = isRecord(identity.session) ? identity.session : undefined;
    const jwt = isRecord(identity.jwt) ? identity.jwt : undefined;
    if (!login && !jwt) {
      this.report.error(['identity'], 'gives no source of identity: add `login` (wxgw exchanges wx.login() codes) and/or `jwt` (tokens the backend issues)', {
        anchor: 'key',
      });
    }
    if (login) {
      if (typeof login.path === 'string') {
        const why = neverMatches(login.path);
        if (why) this.report.error(['identity', 'login', 'path'], `${show(login.path)} ${why}`);
        const routes = Array.isArray(this.data.routes) ? this.data.routes : [];
        routes.forEach((route: unknown, i) => {
          if (isRecord(route) && isRecord(route.match) && route.match.path === login.path) {
            this.report.error(['routes', i, 'match', 'path'], `${show(login.path)} is identity.login.path, which the gateway answers itself; give this route another path`);
          }
        });
      }
      if (!session) {
        this.report.error(['identity', 'login'], 'needs `identity.session` with a signing_key, to sign the session tokens it hands out', {
          anchor: 'key',
          missing: [['identity', 'session']],
        });
      }
      const defaults = this.section('defaults');
      if (!defaults || defaults.allow === undefined) {
        this.report.error(['identity', 'login'], 'takes its allow from `defaults.allow`, which is missing; add e.g. `defaults: { allow: any }`', {
          anchor: 'key',
        });
      }
      const wechat = this.section('wechat');
      const appName = typeof login.app === 'string' ? login.app : undefined;
      const app = this.wechatApp(wechat, appName, ['identity', 'login', 'app']);
      if (app === null) {
        // Reported by wechatApp: the name is not one of wechat.apps.
      } else if (app?.kind === 'wecom') {
        this.report.error(appName === undefined ? ['identity', 'login'] : ['identity', 'login', 'app'], 'names a WeCom app: the login exchanges mini-program codes (jscode2session), which WeCom does not answer', { anchor: 'key' });
      } else if (!app || app.app_secret === undefined) {
        const where = appName === undefined ? '`wechat.appid` and `wechat.app_secret`' : `\`wechat.apps.${appName}.appid\` and \`app_secret\``;
        this.report.error(['identity', 'login'], `needs ${where} to exchange login codes with WeChat`, { anchor: 'key' });
      }
      const up = isRecord(login.upstream) ? login.upstream : undefined;
      if (up && typeof up.upstream === 'string' && !upstreams.includes(up.upstream)) {
        const near = closest(up.upstream, upstreams);
        this.report.error(['identity', 'login', 'upstream', 'upstream'], `${show(up.upstream)} is not defined under upstreams${near ? `; did you mean \`${near}\`?` : ''}`);
      }
      if (up && typeof up.path === 'string') {
        const why = neverMatches(up.path);
        if (why) this.report.error(['identity', 'login', 'upstream', 'path'], `${show(up.path)} ${why}`);
      }
      if (up) this.profileName(up.mask, ['identity', 'login', 'upstream', 'mask'], profiles);
      this.loginLimit(login);
    }
    this.sessionEndpoint('decrypt', identity, upstreams, profiles);
    this.sessionEndpoint('logout', identity, upstreams, profiles);
    if (session) {
      this.hmacKey(session.signing_key, ['identity', 'session', 'signing_key'], 'an HS256 signing key');
      const previous = this.previous(session.previous, ['identity', 'session', 'previous'], ['signing_key']);
      this.hmacKey(previous?.signing_key, ['identity', 'session', 'previous', 'signing_key'], 'an HS256 signing key');
      this.duration(session.ttl, ['identity', 'session', 'ttl']);
    }
    if (jwt) {
      const sources = (['secret', 'public_key', 'jwks'] as const).filter((k) => jwt[k] !== undefined);
      if (sources.length !== 1) {
        this.report.error(
          ['identity', 'jwt'],
          sources.length === 0 ? 'needs exactly one of `secret`, `public_key` or `jwks` to verify tokens with' : `sets ${sources.map((s) => `\`${s}\``).join(' and ')}; keep exactly one`,
          { anchor: 'key' },
        );
      }
      this.hmacKey(jwt.secret, ['identity', 'jwt', 'secret'], 'an HMAC token secret');
      if (typeof jwt.public_key === 'string') this.files.push({ at: ['identity', 'jwt', 'public_key'], file: jwt.public_key, kind: 'public_key' });
      if (typeof jwt.jwks === 'string') this.files.push({ at: ['identity', 'jwt', 'jwks'], file: jwt.jwks, kind: 'jwks' });
      this.duration(jwt.clock_tolerance, ['identity', 'jwt', 'clock_tolerance']);
      if (Array.isArray(jwt.algorithms) && sources.length === 1) {
        const hmac = sources[0] === 'secret';
        jwt.algorithms.forEach((alg: unknown, i) => {
          if (typeof alg === 'string' && alg.startsWith('HS') !== hmac) {
            this.report.error(['identity', 'jwt', 'algorithms', i], `${show(alg)} does not fit a ${hmac ? 'secret (HS algorithms only)' : 'public key (RS, PS, ES or EdDSA algorithms only)'}`);
          }
        });
      }
    }
    const token = isRecord(identity.token) ? identity.token : undefined;
    if (token && token.header !== undefined && token.cookie !== undefined) {
      this.report.error(['identity', 'token'], 'sets both `header` and `cookie`; keep exactly one', { anchor: 'key' });
    }
  }

  /** `identity.decrypt` and `identity.logout`: endpoints for a session wxgw's own login made. */
  private sessionEndpoint(name: 'decrypt' | 'logout', identity: Data, upstreams: string[], profiles: string[]): void {
    const endpoint = isRecord(identity[name]) ? identity[name] : undefined;
    if (!endpoint) return;
    if (typeof endpoint.path === 'string') {
      const why = neverMatches(endpoint.path);
      if (why) this.report.error(['identity', name, 'path'], `${show(endpoint.path)} ${why}`);
      // Each pair said once, at the later of the two.
      for (const o of name === 'decrypt' ? (['login'] as const) : (['login', 'decrypt'] as const)) {
        const other = identity[o];
        if (isRecord(other) && other.path === endpoint.path) this.report.error(['identity', name, 'path'], `${show(endpoint.path)} is also identity.${o}.path; give each endpoint its own path`);
      }
      const routes = Array.isArray(this.data.routes) ? this.data.routes : [];
      routes.forEach((route: unknown, i) => {
        if (isRecord(route) && isRecord(route.match) && route.match.path === endpoint.path) {
          this.report.error(['routes', i, 'match', 'path'], `${show(endpoint.path)} is identity.${name}.path, which the gateway answers itself; give this route another path`);
        }
      });
    }
    const needs = name === 'decrypt' ? 'login' : 'session';
    if (!isRecord(identity[needs])) {
      this.report.error(
        ['identity', name],
        name === 'decrypt'
          ? 'needs `identity.login`: only a session wxgw made at login holds the session_key to decrypt with'
          : 'needs `identity.session`: only wxgw\'s own session tokens can be ended by a logout',
        { anchor: 'key', missing: [['identity', needs]] },
      );
    }
    const defaults = this.section('defaults');
    if (!defaults || defaults.allow === undefined) {
      this.report.error(['identity', name], 'takes its allow from `defaults.allow`, which is missing; add e.g. `defaults: { allow: any }`', { anchor: 'key' });
    }
    if (name === 'logout') return;
    this.duration(endpoint.max_age, ['identity', 'decrypt', 'max_age']);
    const up = isRecord(endpoint.upstream) ? endpoint.upstream : undefined;
    if (up && typeof up.upstream === 'string' && !upstreams.includes(up.upstream)) {
      const near = closest(up.upstream, upstreams);
      this.report.error(['identity', 'decrypt', 'upstream', 'upstream'], `${show(up.upstream)} is not defined under upstreams${near ? `; did you mean \`${near}\`?` : ''}`);
    }
    if (up && typeof up.path === 'string') {
      const why = neverMatches(up.path);
      if (why) this.report.error(['identity', 'decrypt', 'upstream', 'path'], `${show(up.path)} ${why}`);
    }
    if (up) this.profileName(up.mask, ['identity', 'decrypt', 'upstream', 'mask'], profiles);
  }

  /**
   * Each login costs a WeChat call, and the WeChat account's quota is shared by every user: the
   * endpoint is never left unlimited. With no rule that counts a login (there is no openid yet,
   * so only `ip` rules and `fallback_key: ip` count), the gateway's own default applies.
   */
  private loginLimit(login: Data): void {
    const own = login.rate_limit !== undefined;
    if (own) this.rateLimits(login.rate_limit, ['identity', 'login', 'rate_limit'], true);
    const value = own ? login.rate_limit : this.section('defaults')?.rate_limit;
    const rules = Array.isArray(value) ? value : [value];
    if (rules.some((r: unknown) => isRecord(r) && (r.key === 'ip' || r.fallback_key === 'ip'))) return;
    const { key, limit, window } = LOGIN_RATE_LIMIT;
    this.report.warn(
      own ? ['identity', 'login', 'rate_limit'] : ['identity', 'login'],
      `has no rate limit that counts logins (${own ? 'its rate_limit' : 'defaults.rate_limit'} has no \`key: ip\` or \`fallback_key: ip\` rule), so the gateway applies \`{ key: ${key}, limit: ${limit}, window: ${window} }\` per address; set identity.login.rate_limit to choose`,
      { anchor: 'key' },
    );
  }

  maskProfiles(): void {
    const profiles = this.section('mask_profiles');
    if (!profiles) return;
    for (const [name, profile] of Object.entries(profiles)) {
      if (!isRecord(profile)) continue;
      const at = ['mask_profiles', name];
      const target = (value: unknown, where: KeyPath): void => {
        if (typeof value !== 'string') return;
        const parsed = parseMaskTarget(value);
        if (!parsed.ok) this.report.error(where, `${show(value)} ${parsed.why}`, { anchor: where.length === at.length + 2 ? 'key' : 'value' });
      };
      for (const list of ['drop', 'hash'] as const) {
        const items = profile[list];
        if (Array.isArray(items)) items.forEach((item: unknown, i) => target(item, [...at, list, i]));
      }
      for (const map of ['partial', 'replace'] as const) {
        const entries = profile[map];
        if (isRecord(entries)) for (const key of Object.keys(entries)) target(key, [...at, map, key]);
      }
      const hashes = Array.isArray(profile.hash) && profile.hash.length > 0;
      if (hashes && profile.hash_key === undefined) {
        this.report.error([...at, 'hash'], 'needs `hash_key` (e.g. `hash_key: ${MASK_HASH_KEY}`) to compute the HMAC with', { missing: [[...at, 'hash_key']] });
      }
      if (!hashes && profile.hash_key !== undefined) this.report.warn([...at, 'hash_key'], 'is unused: the profile hashes nothing');
      this.hmacKey(profile.hash_key, [...at, 'hash_key'], 'an HMAC key');
      this.size(profile.stream_above, [...at, 'stream_above']);
      const headers = isRecord(profile.headers) ? profile.headers : undefined;
      if (headers && Array.isArray(headers.drop)) {
        headers.drop.forEach((name: unknown, i) => {
          if (typeof name === 'string' && FRAMING_HEADERS.has(name.toLowerCase())) {
            this.report.error([...at, 'headers', 'drop', i], `${show(name)} cannot be dropped: the answer's framing (or its request id) depends on it`);
          }
        });
      }
      const nonEmpty = (v: unknown): boolean => (Array.isArray(v) ? v.length > 0 : isRecord(v) && Object.keys(v).length > 0);
      const rules = ['drop', 'partial', 'replace', 'hash', 'detect'].filter((k) => nonEmpty(profile[k]));
      if (headers) rules.push(...['drop', 'drop_cookies'].filter((k) => nonEmpty(headers[k])));
      if (rules.length === 0) this.report.warn(at, 'masks nothing: give it drop, partial, replace, hash, detect or headers', { anchor: 'key' });
    }
  }

  private profileName(value: unknown, at: KeyPath, profiles: string[]): void {
    if (typeof value !== 'string' || value === 'off' || profiles.includes(value)) return;
    const near = closest(value, profiles);
    this.report.error(at, `${show(value)} is not defined under mask_profiles${near ? `; did you mean \`${near}\`?` : ''}`);
  }

  /** `defaults` and every route: what each asks of the sections above. */
  routes(profiles: string[]): void {
    const identity = this.section('identity');
    const wechat = this.section('wechat');
    const pay = this.section('wechatpay');
    const places: { at: KeyPath; entry: Data }[] = [];
    const defaults = this.section('defaults');
    if (defaults) places.push({ at: ['defaults'], entry: defaults });
    const routes = Array.isArray(this.data.routes) ? this.data.routes : [];
    routes.forEach((route: unknown, i) => {
      if (isRecord(route)) places.push({ at: ['routes', i], entry: route });
    });
    for (const { at, entry } of places) {
      this.rateLimits(entry.rate_limit, [...at, 'rate_limit'], identity !== undefined);
      this.profileName(entry.mask, [...at, 'mask'], profiles);
      if (isRecord(entry.mask)) {
        const openidLists = this.section('openid_lists') ?? {};
        checkMaskChoice(this.report, entry.mask, [...at, 'mask'], { profiles, openidLists, identity });
      }
      if (entry.identity_required === true && !identity) {
        this.report.error([...at, 'identity_required'], 'needs an `identity` section: without one no request can carry a verified identity, so every request would be refused');
      }
      const callback = isRecord(entry.wechat_callback) ? entry.wechat_callback : undefined;
      const notify = isRecord(entry.wechatpay_notify) ? entry.wechatpay_notify : undefined;
      const required = entry.identity_required ?? defaults?.identity_required;
      if ((callback || notify) && required === true) {
        const where = entry.identity_required === true ? [...at, 'identity_required'] : [...at, callback ? 'wechat_callback' : 'wechatpay_notify'];
        const inherited = entry.identity_required === true ? '' : ' (inherited from defaults.identity_required; set `identity_required: false` on this route)';
        this.report.error(where, `a callback route cannot require identity${inherited}: WeChat sends no token, so every callback would be refused with 401`);
      }
      if (callback && notify) this.report.error([...at, 'wechatpay_notify'], 'cannot be combined with wechat_callback on one route; give each its own path', { anchor: 'key' });
      if (callback) {
        const cat = [...at, 'wechat_callback'];
        const appName = typeof callback.app === 'string' ? callback.app : undefined;
        const app = this.wechatApp(wechat, appName, [...cat, 'app']);
        const section = appName === undefined ? 'wechat' : `wechat.apps.${appName}`;
        if (app === null) {
          // Reported by wechatApp: the name is not one of wechat.apps.
        } else if (!app || app.token === undefined) this.report.error(appName === undefined ? cat : [...cat, 'app'], `needs \`${section}.token\` to verify signatures with`, { anchor: 'key' });
        else if (callback.decrypt === true && app.encoding_aes_key === undefined) {
          this.report.error([...cat, 'decrypt'], `needs \`${section}.encoding_aes_key\` to decrypt safe-mode messages`);
        }
        this.duration(callback.max_skew, [...cat, 'max_skew']);
        this.size(callback.max_body, [...cat, 'max_body']);
        this.delivery(callback, cat, entry.report ?? defaults?.report);
      }
      if (notify) {
        const nat = [...at, 'wechatpay_notify'];
        if (!pay) this.report.error(nat, 'needs a `wechatpay` section with the keys that verify notifications', { anchor: 'key' });
        else if (!(Array.isArray(pay.platform_certificates) && pay.platform_certificates.length > 0) && !(Array.isArray(pay.public_keys) && pay.public_keys.length > 0)) {
          this.report.error(nat, 'needs `wechatpay.platform_certificates` or `wechatpay.public_keys`: notifications are verified with configured keys only', { anchor: 'key' });
        }
        else if (notify.decrypt === true && pay.apiv3_key === undefined) this.report.error([...nat, 'decrypt'], 'needs `wechatpay.apiv3_key` to decrypt notifications');
        this.duration(notify.max_skew, [...nat, 'max_skew']);
        this.size(notify.max_body, [...nat, 'max_body']);
        this.delivery(notify, nat, entry.report ?? defaults?.report);
      }
    }
  }

  /** A callback's `delivery`, `retry` and `dedupe_window`; async with the memory store loses what is queued at exit. */
  private delivery(callback: Data, at: KeyPath, report: unknown): void {
    const retry = isRecord(callback.retry) ? callback.retry : undefined;
    this.duration(retry?.backoff, [...at, 'retry', 'backoff']);
    this.duration(retry?.max_backoff, [...at, 'retry', 'max_backoff']);
    this.duration(callback.dedupe_window, [...at, 'dedupe_window']);
    if (callback.delivery !== 'async') return;
    if (Array.isArray(report) && report.includes('callback')) {
      // Report mode passes what it would refuse: queuing it would answer WeChat for unverified messages.
      this.report.error([...at, 'delivery'], '`async` queues verified messages only, but the route reports its callback check (`report: [callback]`) instead of enforcing it; enforce it or deliver `sync`');
    }
    const store = this.section('store');
    if ((store?.kind ?? 'memory') === 'memory') {
      this.report.warn([...at, 'delivery'], 'queues in this process\'s memory: with store.kind memory, messages queued or dead-lettered are lost when the gateway stops; use `store.kind: redis` to keep them');
    }
  }

  private rateLimits(value: unknown, at: KeyPath, hasIdentity: boolean): void {
    const rules: { rule: Data; at: KeyPath }[] = Array.isArray(value)
      ? value.flatMap((r: unknown, i) => (isRecord(r) ? [{ rule: r, at: [...at, i] }] : []))
      : isRecord(value)
        ? [{ rule: value, at }]
        : [];
    for (const { rule, at: rat } of rules) {
      this.duration(rule.window, [...rat, 'window']);
      if (rule.key === 'openid' && !hasIdentity) {
        this.report.error([...rat, 'key'], '`openid` counts verified identities, but the policy has no `identity` section; add one, or count by `ip`');
      }
      if (rule.key === 'ip' && rule.fallback_key !== undefined) {
        this.report.error([...rat, 'fallback_key'], 'applies only to `key: openid`; every request has a client address');
      }
      if (rule.key === 'openid' && rule.fallback_key === undefined) {
        this.report.warn(rat, 'has no fallback_key: requests without a verified openid are not limited by this rule; add `fallback_key: ip`', { anchor: 'key' });
      }
    }
  }

  async keyFiles(): Promise<void> {
    await Promise.all(
      this.files.map(async ({ at, file, kind }) => {
        const path = resolveFrom(this.baseDir, file);
        const read = await readText(path);
        if (!read.ok) {
          this.report.error(at, `cannot read ${path}: ${read.why}`);
          return;
        }
        const why = keyFileProblem(read.text, kind);
        if (why) this.report.error(at, `${path}: ${why}`);
      }),
    );
  }
}

/** WeChat Pay signs with SHA256-RSA only: any other key could never verify a notification. */
const PAY_RSA = 'is not an RSA key, and WeChat Pay signs notifications with SHA256-RSA; download the platform certificate or public key again';

type KeyFileKind = 'public_key' | 'pay_certificate' | 'pay_public_key' | 'jwks';

function keyFileProblem(text: string, kind: KeyFileKind): string | undefined {
  try {
    if (kind === 'pay_certificate') {
      const cert = new X509Certificate(text);
      if (cert.publicKey.asymmetricKeyType !== 'rsa') return `the certificate's key ${PAY_RSA}`;
      if (Date.parse(cert.validTo) < Date.now()) return `the certificate expired on ${cert.validTo}; download the current platform certificate`;
      return undefined;
    }
    if (kind === 'public_key' || kind === 'pay_public_key') {
      if (text.includes('PRIVATE KEY')) return 'holds a private key; give the public key (or certificate) only';
      const key = text.includes('BEGIN CERTIFICATE') ? new X509Certificate(text).publicKey : createPublicKey(text);
      if (kind === 'pay_public_key' && key.asymmetricKeyType !== 'rsa') return `the key ${PAY_RSA}`;
      return undefined;
    }
    const jwks = JSON.parse(text) as unknown;
    if (!isRecord(jwks) || !Array.isArray(jwks.keys) || jwks.keys.length === 0) return 'is not a JSON Web Key Set: expected {"keys": [ ... ]} with at least one key';
    return undefined;
  } catch (err) {
    const what = kind === 'pay_certificate' ? 'a PEM certificate' : kind === 'jwks' ? 'JSON' : 'a PEM public key or certificate';
    return `cannot be read as ${what}: ${err instanceof Error ? err.message : String(err)}`;
  }
}

export async function checkFeatures(data: unknown, baseDir: string, report: Reporter): Promise<void> {
  if (!isRecord(data)) return;
  const checker = new FeatureChecker(data, baseDir, report);
  const upstreams = isRecord(data.upstreams) ? Object.keys(data.upstreams) : [];
  const profiles = isRecord(data.mask_profiles) ? Object.keys(data.mask_profiles) : [];
  checker.store();
  checker.wechat();
  checker.identity(upstreams, profiles);
  checkEgress(data, report, upstreams, profiles);
  checker.maskProfiles();
  checker.routes(profiles);
  await checker.keyFiles();
}
