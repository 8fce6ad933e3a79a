// Schemas the scan's machine outputs are checked against. No npm package we found ships the
// SARIF 2.1.0 JSON schema file, so this is the part of the OASIS schema (sarif-schema-2.1.0.json) that a
// log must satisfy and that code-scanning services read: version, runs, tool.driver with named
// rules, results with a ruleId, a level from the standard's set, a message text and locations
// whose regions start at line 1 or later. Unknown properties stay allowed, as in the standard.
// Also the JSON report's own shape, and what makes an HTML report not self-contained.
import { Ajv2020 } from 'ajv/dist/2020.js';

const message = { type: 'object', required: ['text'], properties: { text: { type: 'string', minLength: 1 } } };

export const SARIF_SUBSET = {
  type: 'object',
  required: ['version', 'runs'],
  properties: {
    $schema: { type: 'string' },
    version: { const: '2.1.0' },
    runs: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        required: ['tool'],
        properties: {
          tool: {
            type: 'object',
            required: ['driver'],
            properties: {
              driver: {
                type: 'object',
                required: ['name'],
                properties: {
                  name: { type: 'string', minLength: 1 },
                  version: { type: 'string' },
                  rules: {
                    type: 'array',
                    items: {
                      type: 'object',
                      required: ['id'],
                      properties: {
                        id: { type: 'string', minLength: 1 },
                        name: { type: 'string' },
                        shortDescription: message,
                        fullDescription: message,
                        help: message,
                        defaultConfiguration: { type: 'object', properties: { level: { enum: ['none', 'note', 'warning', 'error'] } } },
                      },
                    },
                  },
                },
              },
            },
          },
          results: {
            type: 'array',
            items: {
              type: 'object',
              required: ['message', 'ruleId'],
              properties: {
                ruleId: { type: 'string', minLength: 1 },
                ruleIndex: { type: 'integer', minimum: 0 },
                level: { enum: ['none', 'note', 'warning', 'error'] },
                kind: { enum: ['notApplicable', 'pass', 'fail', 'review', 'open', 'informational'] },
                message,
                locations: {
                  type: 'array',
                  items: {
                    type: 'object',
                    properties: {
                      physicalLocation: {
                        type: 'object',
                        required: ['artifactLocation'],
                        properties: {
                          artifactLocation: { type: 'object', required: ['uri'], properties: { uri: { type: 'string', minLength: 1 } } },
                          region: {
                            type: 'object',
                            properties: { startLine: { type: 'integer', minimum: 1 }, startColumn: { type: 'integer', minimum: 1 } },
                          },
                        },
                      },
                      logicalLocations: {
                        type: 'array',
                        items: { type: 'object', properties: { name: { type: 'string' }, kind: { type: 'string' } } },
                      },
                    },
                  },
                },
              },
            },
          },
        },
      },
    },
  },
} as const;

/** The shape `--format json` promises (docs/scan.md). */
export const SCAN_JSON = {
  type: 'object',
  required: ['tool', 'target', 'policy', 'result', 'summary', 'requests', 'findings'],
  additionalProperties: false,
  properties: {
    tool: { type: 'object', required: ['name', 'version'] },
    target: { type: ['string', 'null'] },
    policy: { type: ['string', 'null'] },
    result: { enum: ['pass', 'fail'] },
    summary: {
      type: 'object',
      required: ['error', 'warning', 'note', 'pass'],
      additionalProperties: { type: 'integer', minimum: 0 },
    },
    requests: {
      oneOf: [
        { type: 'null' },
        { type: 'object', required: ['http', 'tls', 'cap', 'capped'], properties: { http: { type: 'integer' }, tls: { type: 'integer' }, cap: { type: 'integer' }, capped: { type: 'boolean' } } },
      ],
    },
    findings: {
      type: 'array',
      items: {
        type: 'object',
        required: ['rule', 'pattern', 'level', 'message', 'evidence', 'location', 'url', 'fix'],
        additionalProperties: false,
        properties: {
          rule: { type: 'string', pattern: '^WX[0-6]-[A-Z-]+$' },
          pattern: { type: 'integer', minimum: 0, maximum: 6 },
          level: { enum: ['error', 'warning', 'note', 'pass'] },
          message: { type: 'string', minLength: 1 },
          evidence: { type: 'array', items: { type: 'string' } },
          location: {
            oneOf: [
              { type: 'null' },
              { type: 'object', required: ['file', 'line', 'col'], properties: { file: { type: 'string' }, line: { type: 'integer', minimum: 1 }, col: { type: 'integer', minimum: 1 } } },
            ],
          },
          url: { type: ['string', 'null'] },
          fix: { type: 'string', minLength: 1 },
        },
      },
    },
  },
} as const;

const ajv = new Ajv2020({ allErrors: true, strict: false });
const sarif = ajv.compile(SARIF_SUBSET);
const json = ajv.compile(SCAN_JSON);

/** Empty when the document fits; else ajv's errors, one a line. */
export function sarifErrors(doc: unknown): string {
  return sarif(doc) ? '' : ajv.errorsText(sarif.errors, { separator: '\n' });
}

export function scanJsonErrors(doc: unknown): string {
  return json(doc) ? '' : ajv.errorsText(json.errors, { separator: '\n' });
}

/** No tag that loads anything, and no stylesheet reference: the file stands alone. */
export function externalReferences(html: string): string[] {
  const tags = html.match(/<[a-zA-Z][^>]*>/g) ?? [];
  const style = (html.match(/<style>([\s\S]*?)<\/style>/g) ?? []).join('');
  return [
    ...tags.filter((t) => /^<(script|link|img|iframe|object|embed|base|form)\b|\s(src|href|action|srcset)=/i.test(t)),
    ...(/url\(|@import/i.test(style) ? ['a stylesheet reference'] : []),
  ];
}
