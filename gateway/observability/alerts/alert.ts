// One alert message: what a rule says when it fires or clears. It carries only the gateway's own
// facts (rule, counts, reason codes, certificate files, instance and host), never a request's
// content, address or identity, so any channel may receive it.

export interface Alert {
  /** The idempotency key: one per message, the same on every attempt and every channel. */
  readonly id: string;
  readonly rule: string;
  readonly kind: 'refusals' | 'store_down' | 'certificate_expiring' | 'reload_failed';
  readonly state: 'firing' | 'resolved';
  /** alerts.instance, and the host name the process runs on. */
  readonly instance: string;
  readonly host: string;
  /** ISO-8601 time the rule fired or cleared. */
  readonly at: string;
  /** One line for people. */
  readonly summary: string;
  /** The figures behind the summary: counts, reason codes, durations in seconds, file names. */
  readonly details: Readonly<Record<string, string | number>>;
}
