// wxgw itself, started from a policy file, logging to a file so the console stays readable.
// argv: configFile logFile
import { startGateway } from '../../gateway/main.js';
import { bufferedDestination, createLogger } from '../../gateway/observability/logger.js';

const [config, logFile] = process.argv.slice(2) as [string, string];
const logger = createLogger({ destination: bufferedDestination(logFile) });
await startGateway({ config, logger });
process.send?.('ready');
