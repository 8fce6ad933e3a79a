// Preloaded into a gateway process by alloc.bench.ts: V8's sampling heap profiler, keeping the
// samples of objects the GC already collected, so the profile is what a request allocates, not
// what survives it. Driven over the IPC channel: 'alloc-start', then 'alloc-stop' answers with
// the profile's nodes flattened to { site, bytes }.
import { Session } from 'node:inspector/promises';

const session = new Session();
session.connect();
await session.post('HeapProfiler.enable');

function flatten(node, out) {
  const f = node.callFrame;
  const site = `${f.functionName || '(anonymous)'} ${f.url.replace(/^.*\/(node_modules|gateway)\//, '$1/')}:${f.lineNumber + 1}`;
  if (node.selfSize > 0) out.set(site, (out.get(site) ?? 0) + node.selfSize);
  for (const child of node.children) flatten(child, out);
  return out;
}

process.on('message', async (msg) => {
  if (msg === 'alloc-start') {
    await session.post('HeapProfiler.startSampling', {
      samplingInterval: 1024,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    });
    process.send('alloc-started');
  } else if (msg === 'alloc-stop') {
    const { profile } = await session.post('HeapProfiler.stopSampling');
    process.send({ sites: [...flatten(profile.head, new Map())] });
  }
});
