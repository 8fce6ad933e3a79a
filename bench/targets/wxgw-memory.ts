// wxgw started from a policy file, answering `memory` on its IPC channel with its heap (after full
// GCs; run with --expose-gc) and RSS, so a benchmark can measure what open sessions cost it.
// argv: configFile logFile
import { startGateway } from '../../gateway/main.js';
import { bufferedDestination, createLogger } from '../../gateway/observability/logger.js';

const [config, logFile] = process.argv.slice(2) as [string, string];
const logger = createLogger({ destination: bufferedDestination(logFile) });
const gw = await startGateway({ config, logger });
const gc = (globalThis as { gc?: () => void }).gc;
process.on('message', (m) => {
  if (m === 'memory') {
    gc?.();
    gc?.();
    const { heapUsed, rss, external, arrayBuffers } = process.memoryUsage();
    process.send?.({ heapUsed, rss, external, arrayBuffers });
  } else if (m === 'close') void gw.close().then(() => process.exit(0));
});
process.send?.('ready');
