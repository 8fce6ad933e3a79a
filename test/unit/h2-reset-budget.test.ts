// The rapid-reset bound (server.limits.http2_resets): a connection may reset `limit` streams per
// 10 s window; the next one in the same window spends the budget, and a new window starts afresh.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RESET_WINDOW_MS, ResetBudget } from '../../gateway/proxy/h2-server.js';

test('resets up to the limit per window pass; one more in the same window does not', () => {
  let now = 1000;
  const budget = new ResetBudget(3, () => now);
  assert.deepEqual([budget.spend(), budget.spend(), budget.spend()], [false, false, false]);
  now += RESET_WINDOW_MS - 1;
  assert.equal(budget.spend(), true, 'the fourth within one window');
});

test('a new window counts from zero, so a client that cancels now and then is never closed', () => {
  let now = 0;
  const budget = new ResetBudget(2, () => now);
  for (let window = 0; window < 5; window++) {
    assert.equal(budget.spend(), false);
    assert.equal(budget.spend(), false);
    now += RESET_WINDOW_MS;
  }
});
