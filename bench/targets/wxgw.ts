// wxgw itself, started from a policy file, logging to a file so the console stays readable.
// argv: configFile logFile
import { startGateway } from '../../gateway/main.js';
import { bufferedDestination, createLogger } from '../../gateway/observability/logger.js';

const [config, logFile] = process.argv.slice(2) as [string, string];
const logger = createLogger({ destination: bufferedDestination(logFile) });
await startGateway({ config, logger });
process.send?.('ready');
// A clean exit on SIGINT, so that `node --cpu-prof` writes its profile (bench/profile.bench.ts).
process.once('SIGINT', () => process.exit(0));
