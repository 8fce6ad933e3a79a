// What /readyz reports, read at each call from the snapshot in force and the listeners, with an
// injected clock.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import type { Snapshot } from '../../gateway/snapshot.js';
import { readiness } from '../../gateway/runtime/readiness.js';

const DAY = 86_400_000;
const cert = (certFile: string, notAfter: number) => ({ certFile, notAfter: new Date(notAfter) });
const snapshot = (certificates: ReturnType<typeof cert>[]) => ({ certificates }) as unknown as Snapshot;
const listener = (name: 'https' | 'admin', listening: boolean) => ({ name, server: { listening } as Server });

test('ready while every certificate is valid and every listener is up', () => {
  const source = { current: snapshot([cert('a.pem', 10 * DAY)]) };
  assert.deepEqual(readiness(source, [listener('https', true)], () => 9 * DAY).failing(), []);
});

test('an expired certificate and a listener that is down are named', () => {
  const source = { current: snapshot([cert('a.pem', 10 * DAY), cert('b.pem', 20 * DAY)]) };
  const r = readiness(source, [listener('https', true), listener('admin', false)], () => 10 * DAY);
  assert.deepEqual(r.failing(), ['certificate expired: a.pem', 'listener not up: admin']);
});

test('the snapshot in force is read at each call: a renewal clears the failure at once', () => {
  const source = { current: snapshot([cert('a.pem', DAY)]) };
  const r = readiness(source, [], () => 2 * DAY);
  assert.deepEqual(r.failing(), ['certificate expired: a.pem']);
  source.current = snapshot([cert('a.pem', 30 * DAY)]);
  assert.deepEqual(r.failing(), []);
});
