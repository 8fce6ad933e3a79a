// WeChat's daily API quotas and the day they are counted in. The defaults are the limits WeChat
// documents for a newly registered account ("接口调用频次限制说明",
// https://developers.weixin.qq.com/doc/offiaccount/Message_Management/API_Call_Limits.html);
// verified and busier accounts get more, which the policy's `wechat.quotas` states. Past a quota
// WeChat answers errcode 45009 and refuses the API until the count resets at 00:00 Beijing time.

/** Calls a day by API path, as documented for new accounts. */
export const DOCUMENTED_QUOTAS: ReadonlyMap<string, number> = new Map([
  ['/cgi-bin/token', 2000],
  ['/cgi-bin/menu/create', 1000],
  ['/cgi-bin/menu/get', 10_000],
  ['/cgi-bin/menu/delete', 1000],
  ['/cgi-bin/media/upload', 5000],
  ['/cgi-bin/media/get', 10_000],
  ['/cgi-bin/message/custom/send', 500_000],
  ['/cgi-bin/message/mass/sendall', 100],
  ['/cgi-bin/media/uploadnews', 10],
  ['/cgi-bin/message/mass/delete', 10],
  ['/cgi-bin/qrcode/create', 100_000],
  ['/cgi-bin/user/get', 500],
  ['/cgi-bin/user/info', 5_000_000],
  ['/cgi-bin/user/info/updateremark', 10_000],
]);

/** The documented quotas with the policy's entries over them, path by path. */
export function quotaBudgets(own: Readonly<Record<string, { per_day: number }>> | undefined): ReadonlyMap<string, number> {
  const budgets = new Map(DOCUMENTED_QUOTAS);
  for (const [path, q] of Object.entries(own ?? {})) budgets.set(path, q.per_day);
  return budgets;
}

/** Beijing time is UTC+8 all year (China has no daylight saving time). */
const BEIJING_OFFSET_MS = 8 * 3600_000;
const DAY_MS = 24 * 3600_000;

/** The Beijing calendar day `now` falls in, e.g. `2026-12-02`, and the milliseconds until it ends. */
export function quotaDay(now: number): { day: string; msToReset: number } {
  const local = now + BEIJING_OFFSET_MS;
  const day = new Date(local).toISOString().slice(0, 10);
  return { day, msToReset: DAY_MS - (((local % DAY_MS) + DAY_MS) % DAY_MS) };
}
