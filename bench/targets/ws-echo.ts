// A WebSocket backend for benchmarks: echoes every message on plain ws://.
// argv: port
import { WebSocketServer } from 'ws';

const port = Number(process.argv[2]);
const wss = new WebSocketServer({ host: '127.0.0.1', port, perMessageDeflate: false });
wss.on('connection', (socket) => socket.on('message', (data: Buffer, isBinary) => socket.send(data, { binary: isBinary })));
wss.on('listening', () => process.send?.('ready'));
