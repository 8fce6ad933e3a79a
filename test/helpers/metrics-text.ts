// Reading Prometheus text: one sample's value, the metric families a scrape declares, and the
// wxgw_ metric names an expression (a dashboard's, an alert rule's) asks for.
import { spawn } from 'node:child_process';

/** The value of the sample `name{labels}` exactly as written (labels in the gateway's order), or undefined. */
export function sample(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  return undefined;
}

/** Every metric family the text declares (`# TYPE name type`), with its type. */
export function families(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) out.set(m[1]!, m[2]!);
  return out;
}

/** The wxgw_ names an expression queries. */
export function queriedNames(expr: string): string[] {
  return [...new Set(expr.match(/wxgw_[a-z_]+/g) ?? [])];
}

/** Whether `name` is served: a family, or a histogram's _bucket, _sum or _count. */
export function served(name: string, declared: ReadonlyMap<string, string>): boolean {
  if (declared.has(name)) return true;
  const m = /^(.*)_(bucket|sum|count)$/.exec(name);
  return m !== null && declared.get(m[1]!) === 'histogram';
}

/** Runs promtool with `args`, `input` on its stdin; resolves with its exit code and output. */
export function promtool(args: string[], input?: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('promtool', args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
    child.stdin.end(input);
  });
}
