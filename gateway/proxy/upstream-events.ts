// What the upstream groups report, as metrics and log lines: each target's health, its
// ejections, the requests it was given.
//
//   upstreamEvents(registry, logger, states) -> GroupEvents for UpstreamPools.observe()
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from '../observability/logger.js';
import type { GroupEvents } from './upstream-group.js';

export interface TargetState {
  upstream: string;
  target: string;
  up: boolean;
}

export function upstreamEvents(registry: Registry, logger: Logger, states: () => Iterable<TargetState>): GroupEvents {
  const registers = [registry];
  new Gauge({
    name: 'wxgw_upstream_target_up',
    help: '1 while a target of an upstream takes requests, 0 while it is ejected or failing its health checks; by upstream and target.',
    labelNames: ['upstream', 'target'],
    registers,
    collect() {
      // Read at scrape time: an ejection's end is a moment passing, not an event.
      this.reset();
      for (const s of states()) this.labels(s.upstream, s.target).set(s.up ? 1 : 0);
    },
  });
  const ejections = new Counter({
    name: 'wxgw_upstream_ejections_total',
    help: 'Times a target was taken out: cause connect (connection failures in a row) or health_check (failed active checks); by upstream and target.',
    labelNames: ['upstream', 'target', 'cause'],
    registers,
  });
  const requests = new Counter({
    name: 'wxgw_upstream_requests_total',
    help: 'Requests given to each target of an upstream (a retried one counts on both), by upstream and target.',
    labelNames: ['upstream', 'target'],
    registers,
  });
  return {
    ejected(upstream, target, cooldownMs, err) {
      ejections.inc({ upstream, target, cause: 'connect' });
      logger.warn({ upstream, target, cooldown_ms: cooldownMs, err }, 'upstream target ejected after connection failures; other targets take its requests until the cool-down ends');
    },
    checked(upstream, target, up, why) {
      if (up) {
        logger.info({ upstream, target }, 'upstream target passed its health checks and takes requests again');
        return;
      }
      ejections.inc({ upstream, target, cause: 'health_check' });
      logger.warn({ upstream, target, why }, 'upstream target failed its health checks; other targets take its requests');
    },
    recovered(upstream, target) {
      logger.info({ upstream, target }, 'upstream target connects again after its ejection');
    },
    dispatched(upstream, target) {
      requests.inc({ upstream, target });
    },
  };
}
