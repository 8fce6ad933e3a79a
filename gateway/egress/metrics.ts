// The egress's own metrics, on the gateway's registry: token refreshes, calls by API and errcode,
// budgets used, circuit states. Labels carry API paths and errcodes only, never a token or secret;
// paths the backend invents are folded into `other` so the label set stays bounded.
import { Counter, Gauge, type Registry } from 'prom-client';

/** Distinct `api` labels kept; later ones are counted as `other`. */
const MAX_APIS = 200;
const API_SHAPE = /^\/[a-z0-9_./-]{1,80}$/i;

export type RefreshResult = 'ok' | 'forced' | 'error' | 'waited';
export type CircuitState = 'closed' | 'open' | 'half_open';

export class EgressMetrics {
  private readonly refreshes: Counter<'result'>;
  private readonly calls: Counter<'api' | 'errcode'>;
  private readonly refusals: Counter<'api' | 'reason'>;
  private readonly used: Gauge<'api'>;
  private readonly near: Gauge<'api'>;
  private readonly circuit: Gauge<'api'>;
  private readonly transitions: Counter<'api' | 'to'>;
  private readonly apis = new Set<string>();

  constructor(registry: Registry) {
    const registers = [registry];
    this.refreshes = new Counter({ name: 'wxgw_egress_token_refreshes_total', help: 'access_token refreshes by this instance, by result: ok, forced (force_refresh after a rejected token), error, waited (another instance refreshed)', labelNames: ['result'], registers });
    this.calls = new Counter({ name: 'wxgw_egress_calls_total', help: 'WeChat API calls through the egress, by API path and the errcode WeChat answered (0 for none, timeout, network)', labelNames: ['api', 'errcode'], registers });
    this.refusals = new Counter({ name: 'wxgw_egress_refused_total', help: 'Egress calls answered by wxgw instead of WeChat, by API and reason (wx_quota, wx_circuit_open, ...)', labelNames: ['api', 'reason'], registers });
    this.used = new Gauge({ name: 'wxgw_egress_quota_used_ratio', help: "Share of the API's daily budget (wechat.quotas) used today, Beijing time, across instances", labelNames: ['api'], registers });
    this.near = new Gauge({ name: 'wxgw_egress_quota_near', help: '1 while an API has used 90% or more of its daily budget', labelNames: ['api'], registers });
    this.circuit = new Gauge({ name: 'wxgw_egress_circuit_state', help: "An API's circuit on this instance: 0 closed, 1 half-open (one probe), 2 open", labelNames: ['api'], registers });
    this.transitions = new Counter({ name: 'wxgw_egress_circuit_transitions_total', help: 'Circuit state changes by API and new state', labelNames: ['api', 'to'], registers });
  }

  /** The label an API path is counted under. */
  api(path: string): string {
    if (this.apis.has(path)) return path;
    if (!API_SHAPE.test(path) || this.apis.size >= MAX_APIS) return 'other';
    this.apis.add(path);
    return path;
  }

  refreshed(result: RefreshResult): void {
    this.refreshes.inc({ result });
  }

  called(api: string, errcode: number | 'timeout' | 'network'): void {
    this.calls.inc({ api: this.api(api), errcode: String(errcode) });
  }

  refused(api: string, reason: string): void {
    this.refusals.inc({ api: this.api(api), reason });
  }

  budget(api: string, usedRatio: number, nearLimit: boolean): void {
    const label = this.api(api);
    this.used.set({ api: label }, usedRatio);
    this.near.set({ api: label }, nearLimit ? 1 : 0);
  }

  circuitChanged(api: string, to: CircuitState): void {
    const label = this.api(api);
    this.circuit.set({ api: label }, to === 'closed' ? 0 : to === 'half_open' ? 1 : 2);
    this.transitions.inc({ api: label, to });
  }
}
