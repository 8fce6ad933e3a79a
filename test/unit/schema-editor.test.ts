// The schema editors read (config/policy.editor.schema.json) run through yaml-language-server's
// own language service, the validator behind VS Code's YAML extension and other editors: every
// policy wxgw ships shows no diagnostic, ${...} references pass where the loader resolves them,
// and the mistakes the loader refuses are still marked.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { parse } from 'yaml';
import { TextDocument } from 'vscode-languageserver-textdocument';
import { getLanguageService } from 'yaml-language-server/lib/umd/languageservice/yamlLanguageService.js';
import { editorFile, renderEditorSchema } from '../../scripts/editor-schema.js';
import { parsePolicyText } from '../../gateway/policy/load.js';
import { PolicyError } from '../../gateway/types/policy.js';
import { repoRoot } from '../helpers/process.js';

const service = getLanguageService({
  schemaRequestService: async (uri: string) => readFileSync(new URL(uri), 'utf8'),
  workspaceContext: { resolveRelativePath: (relative: string, resource: string) => new URL(relative, resource).href },
});
// As an editor with no schema settings: each file names its schema in its first line.
service.configure({ validate: true, hover: false, completion: false, schemas: [] });

/** The editor's diagnostics for `text` as if it were the file at `path` (repository-relative). */
async function diagnostics(path: string, text: string): Promise<string[]> {
  const doc = TextDocument.create(pathToFileURL(join(repoRoot, path)).href, 'yaml', 1, text);
  const found = await service.doValidation(doc, false);
  return found.map((d) => `${path}:${d.range.start.line + 1}: ${d.message}`);
}

const MODELINE = '# yaml-language-server: $schema=./policy.editor.schema.json';

test('the editor schema is the one `npm run schema:editor` derives from policy.schema.json', () => {
  assert.equal(readFileSync(editorFile, 'utf8'), renderEditorSchema(), 'config/policy.editor.schema.json is out of date: run `npm run schema:editor`');
  const ajv = new Ajv2020({ strict: true, allowUnionTypes: true });
  ajv.addVocabulary(['x-expect', 'x-kind', 'x-secret', 'x-refused']);
  ajv.compile(JSON.parse(readFileSync(editorFile, 'utf8')));
});

/** Every YAML file under config/ and docker/, repository-relative. */
function shippedYaml(dir: string): string[] {
  return readdirSync(join(repoRoot, dir), { withFileTypes: true }).flatMap((e) => {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory()) return shippedYaml(path);
    return /\.ya?ml$/.test(e.name) ? [path] : [];
  });
}

/** A YAML text is a policy when its top level has `version` and `routes`. */
const isPolicy = (value: unknown): boolean => typeof value === 'object' && value !== null && 'version' in value && 'routes' in value;

test('every shipped policy names the editor schema and shows no diagnostic in yaml-language-server', async () => {
  const policies: { path: string; text: string }[] = [];
  for (const path of [...shippedYaml('config'), ...shippedYaml('docker')]) {
    const text = readFileSync(join(repoRoot, path), 'utf8');
    const doc = parse(text) as unknown;
    if (isPolicy(doc)) policies.push({ path, text });
    // A ConfigMap carries a policy as text: an editor checks it once it is a file again, beside
    // the schema its first line names (config/, where its original lives).
    const data = (doc as { kind?: string; data?: Record<string, string> } | null)?.kind === 'ConfigMap' ? (doc as { data: Record<string, string> }).data : {};
    for (const [name, embedded] of Object.entries(data)) {
      if (/\.ya?ml$/.test(name) && isPolicy(parse(embedded))) policies.push({ path: `config/${path.replaceAll('/', '-')}-${name}`, text: embedded });
    }
  }
  assert.ok(policies.length >= 3, policies.map((p) => p.path).join(', '));
  for (const { path, text } of policies) {
    assert.ok(text.startsWith(MODELINE), `${path} names the editor schema on its first line`);
    assert.deepEqual(await diagnostics(path, text), []);
  }
});

const WITH_REFERENCES = `${MODELINE}
version: 1
server:
  https: { listen: "\${HTTPS_LISTEN}" }
  http: { listen: "\${HTTP_LISTEN}", mode: "\${HTTP_MODE}" }
  limits: { body: "\${BODY_LIMIT}", request_timeout: "\${REQUEST_TIMEOUT}" }
tls:
  min_version: \${TLS_MIN}
  roots: system
  certificates:
    - { cert: "\${file:cert-path.txt}", key: /etc/wxgw/certs/privkey.pem }
store: { kind: "\${STORE_KIND}", redis_url: "redis://\${REDIS_HOST}:6379", on_unavailable: deny }
upstreams:
  legacy: { url: "\${UPSTREAM_URL}", timeout: "\${UPSTREAM_TIMEOUT}" }
routes:
  - { name: api, match: { path_prefix: /api/ }, upstream: legacy }
defaults: { allow: any }
`;

const RESOLVED = {
  HTTPS_LISTEN: '127.0.0.1:8443',
  HTTP_LISTEN: '127.0.0.1:8080',
  HTTP_MODE: 'redirect',
  BODY_LIMIT: '1mb',
  REQUEST_TIMEOUT: '30s',
  TLS_MIN: 'TLSv1.2',
  STORE_KIND: 'redis',
  REDIS_HOST: 'redis',
  UPSTREAM_URL: 'http://127.0.0.1:9000',
  UPSTREAM_TIMEOUT: '10s',
};

/** The loader's errors for `text`, given `env`, but for unreadable files (none exist here). */
async function loaderErrors(text: string, env: Record<string, string>): Promise<string[]> {
  try {
    await parsePolicyText(text, join(repoRoot, 'config/x.yaml'), { env });
    return [];
  } catch (err) {
    if (!(err instanceof PolicyError)) throw err;
    return err.diagnostics.filter((d) => d.severity === 'error' && !/cannot read/.test(d.message)).map((d) => `${d.path}: ${d.message}`);
  }
}

test('${VAR} and ${file:...} pass in the editor where the loader resolves them: strings, enums, patterns', async () => {
  assert.deepEqual(await diagnostics('config/references.yaml', WITH_REFERENCES), []);
  // The loader takes the same text once the references resolve (the ${file:} one aside: no such file here).
  assert.deepEqual(await loaderErrors(WITH_REFERENCES, RESOLVED), []);
});

test('the editor still refuses what the loader refuses: a wrong word, a reference for a number, an unknown key', async () => {
  const cases: [string, RegExp][] = [
    ['  http: { listen: "127.0.0.1:80", mode: redirct }', /Value is not accepted/],
    ['  http: { listen: "${HTTP_LISTEN}" }\n  public_port: ${PUBLIC_PORT}', /Incorrect type\. Expected "integer"/],
    ['  http: { listen: "${HTTP_LISTEN}", mdoe: redirect }', /Property mdoe is not allowed/],
    ['  http: { listen: "127.0.0.1" }', /does not match the pattern/],
  ];
  for (const [i, [http, expected]] of cases.entries()) {
    const text = WITH_REFERENCES.replace(/^ {2}http: .*$/m, http);
    const found = await diagnostics(`config/mistake-${i}.yaml`, text);
    assert.equal(found.length, 1, `${http}: ${found.join('\n')}`);
    assert.match(found[0]!, expected, http);
    assert.notDeepEqual(await loaderErrors(text, { ...RESOLVED, PUBLIC_PORT: '443' }), [], `the loader refuses ${http} too`);
  }
  // A reference that resolves to a wrong word passes the editor and is refused by the loader.
  assert.match((await loaderErrors(WITH_REFERENCES, { ...RESOLVED, HTTP_MODE: 'redirct' })).join('\n'), /server\.http\.mode: `redirct` is not one of redirect, off/);
});
