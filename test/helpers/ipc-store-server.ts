// The primary's side of store/ipc-store.ts in a child process of its own, for the unit test: a
// MemoryStore (at most `argv[2]` keys) answering the parent's calls over the IPC channel.
import { MemoryStore } from '../../gateway/store/memory-store.js';
import { serveStore, type IpcPort } from '../../gateway/store/ipc-store.js';

const store = new MemoryStore({ maxKeys: Number(process.argv[2] ?? 1_000_000) });
serveStore(store, process as unknown as IpcPort);
process.on('disconnect', () => process.exit(0));
process.send!({ wxgw: 'serving' });
