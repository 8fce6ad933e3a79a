// Real certificate chains on disk for TLS tests: root -> intermediate -> leaf, correct or broken
// in one named way, built on gateway/tls/generate.ts.
//
//   makeChain({ problem?, cn?, dns?, ips?, notAfter?, passphrase? }) -> TestChain
//   tlsConfig(entries, { roots?, min_version?, expiry_warning? })  -> TlsConfig

import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { CertificateEntry, TlsConfig } from '../../gateway/types/policy.js';
import {
  encryptKey,
  issueIntermediate,
  issueLeaf,
  issueRoot,
  type Issued,
  type LeafOptions,
} from '../../gateway/tls/generate.js';

export type ChainProblem =
  /** The leaf alone, without its intermediate. */
  | 'leaf-only'
  /** root -> int1 -> int2 -> leaf served as leaf, int1, int2. */
  | 'wrong-order'
  /** A correct chain with the key of another certificate. */
  | 'wrong-key'
  | 'expired'
  | 'expired-intermediate'
  | 'not-yet-valid'
  /** A self-signed leaf, no intermediate. */
  | 'self-signed'
  /** A complete chain whose root is not the one in root.pem. */
  | 'untrusted-root'
  /** The intermediate and its key served as if it were the server certificate. */
  | 'ca-as-leaf'
  /** A leaf whose extended key usage is clientAuth only. */
  | 'client-auth-only'
  /** A correct chain with the (trusted) root appended. */
  | 'with-root';

export interface MakeChainOptions {
  problem?: ChainProblem;
  /** Leaf common name; defaults to `api.example.test`. */
  cn?: string;
  /** Leaf DNS names; default `[cn]`. */
  dns?: string[];
  ips?: string[];
  notAfter?: Date;
  /** Writes the key encrypted with this passphrase. */
  passphrase?: string;
  /** The leaf's Authority Information Access "CA Issuers" URI. */
  caIssuers?: string;
}

export interface TestChain {
  dir: string;
  /** root.pem: the CA bundle tests trust. */
  root: string;
  rootPem: string;
  /** The chain file as it is to be served (leaf first, unless the problem says otherwise). */
  cert: string;
  key: string;
  /** Issues another correct leaf under the same intermediate into `<file>.cert.pem`/`.key.pem`. */
  addLeaf(opts: { file: string; cn: string; dns?: string[] }): Promise<{ cert: string; key: string }>;
}

const DAY = 86_400_000;
const ROOT_CN = 'Test Root CA';
const INT_CN = 'Test Intermediate CA';

// RSA key generation is most of the cost of a chain, so each role's key is made once per process.
// Certificates stay distinct (fresh serials, own validity), but one chain's root.pem also verifies
// another chain's certificates; the untrusted root has a key of its own.
const keys = new Map<string, string>();
function key(role: 'root' | 'int' | 'int2' | 'leaf' | 'other-leaf' | 'other-root'): string {
  let pem = keys.get(role);
  if (!pem) {
    const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
    pem = pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    keys.set(role, pem);
  }
  return pem;
}

export async function makeChain(opts: MakeChainOptions = {}): Promise<TestChain> {
  const dir = await mkdtemp(path.join(tmpdir(), 'wxgw-tls-'));
  const now = Date.now();
  const problem = opts.problem;
  const cn = opts.cn ?? 'api.example.test';

  const root = issueRoot({ cn: ROOT_CN, key: key('root') });
  const int = issueIntermediate(
    root,
    problem === 'expired-intermediate'
      ? { cn: INT_CN, key: key('int'), notBefore: new Date(now - 400 * DAY), notAfter: new Date(now - DAY) }
      : { cn: INT_CN, key: key('int') },
  );
  const leafOpts: LeafOptions = {
    cn,
    key: key('leaf'),
    dns: opts.dns ?? [cn],
    ips: opts.ips ?? [],
    notAfter: opts.notAfter,
    caIssuers: opts.caIssuers,
    ...(problem === 'expired' && { notBefore: new Date(now - 100 * DAY), notAfter: new Date(now - 2 * DAY) }),
    ...(problem === 'not-yet-valid' && { notBefore: new Date(now + 3 * DAY) }),
    ...(problem === 'client-auth-only' && { extendedKeyUsage: ['clientAuth' as const] }),
  };

  const served = servedCertificates(problem, root, int, leafOpts);
  const leafKey = problem === 'wrong-key' ? key('other-leaf') : problem === 'ca-as-leaf' ? int.key : key('leaf');
  const trusted = problem === 'untrusted-root' ? issueRoot({ cn: 'Some Other Root CA', key: key('other-root') }) : root;

  const files = { root: path.join(dir, 'root.pem'), cert: path.join(dir, 'cert.pem'), key: path.join(dir, 'key.pem') };
  await writeFile(files.root, trusted.cert);
  await writeFile(files.cert, served.map((c) => c.cert).join(''));
  await writeFile(files.key, opts.passphrase ? encryptKey(leafKey, opts.passphrase) : leafKey, { mode: 0o600 });

  return {
    dir,
    ...files,
    rootPem: trusted.cert,
    async addLeaf({ file, cn: leafCn, dns }) {
      const leaf = issueLeaf(int, { cn: leafCn, dns: dns ?? [leafCn], key: key('leaf') });
      const out = { cert: path.join(dir, `${file}.cert.pem`), key: path.join(dir, `${file}.key.pem`) };
      await writeFile(out.cert, leaf.cert + int.cert);
      await writeFile(out.key, leaf.key, { mode: 0o600 });
      return out;
    },
  };
}

function servedCertificates(
  problem: ChainProblem | undefined,
  root: Issued,
  int: Issued,
  leafOpts: LeafOptions,
): Issued[] {
  switch (problem) {
    case 'leaf-only':
      return [issueLeaf(int, leafOpts)];
    case 'wrong-order': {
      const int2 = issueIntermediate(int, { cn: 'Test Intermediate CA 2', key: key('int2') });
      return [issueLeaf(int2, leafOpts), int, int2];
    }
    case 'self-signed':
      return [issueLeaf(null, leafOpts)];
    case 'ca-as-leaf':
      return [int];
    case 'with-root':
      return [issueLeaf(int, leafOpts), int, root];
    default:
      return [issueLeaf(int, leafOpts), int];
  }
}

/** A TlsConfig as loadPolicy would produce it, with entries placed at made-up policy lines. */
export function tlsConfig(
  entries: Array<{ cert: string; key: string; passphrase?: string }>,
  opts: Partial<Pick<TlsConfig, 'roots' | 'min_version' | 'expiry_warning'>> = {},
): TlsConfig {
  const file = '/etc/wxgw/gateway.yaml';
  const certificates: CertificateEntry[] = entries.map((e, i) => ({
    ...e,
    pos: { file, line: 12 + 3 * i, col: 7, path: `tls.certificates[${i}]` },
  }));
  return {
    min_version: opts.min_version ?? 'TLSv1.2',
    roots: opts.roots ?? 'system',
    expiry_warning: opts.expiry_warning ?? 14 * DAY,
    certificates,
    hsts: null,
    pos: { file, line: 8, col: 1, path: 'tls' },
  };
}
