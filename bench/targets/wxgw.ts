// wxgw itself, started from a policy file, logging to a file so the console stays readable.
// argv: configFile logFile
import { startGateway } from '../../gateway/main.js';
import { createLogger } from '../../gateway/observability/logger.js';
import { pino } from 'pino';

const [config, logFile] = process.argv.slice(2) as [string, string];
const logger = createLogger({ destination: pino.destination({ dest: logFile, sync: false }) });
await startGateway({ config, logger });
process.send?.('ready');
