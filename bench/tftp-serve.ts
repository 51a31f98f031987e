/**
 * forge's TFTP engine alone in its own process, for the TFTP bench: its CPU is then read from
 * /proc like the rivals', without the bench's own work (sha256 checks, atftp spawning).
 *
 *   node dist/bench/tftp-serve.js ROOT [MAX_TRANSFERS]
 *
 * Prints `{"port":N}` once listening; each line on stdin asks for the stats (one JSON line back);
 * stdin closing or SIGTERM ends it.
 */
import { createLogger } from '../server/log.js';
import { TftpServer, tftpPathCounts } from '../server/services/tftp/index.js';

const root = process.argv[2];
if (root === undefined) {
  process.stderr.write('usage: tftp-serve ROOT [MAX_TRANSFERS]\n');
  process.exit(2);
}
const server = new TftpServer({ port: 0, address: '127.0.0.1', root, log: createLogger('warn', 'bench.tftp'), maxTransfers: Number(process.argv[3] ?? 1100), maxPerClient: 2000 });
await server.start();
process.stdout.write(`${JSON.stringify({ port: server.port })}\n`);
process.stdin.setEncoding('utf8');
// The path counts say whether the native pump served (FORGE_NATIVE_TFTP=0 or a missing addon: JavaScript).
process.stdin.on('data', () => process.stdout.write(`${JSON.stringify({ ...server.stats, native: tftpPathCounts.native, js: tftpPathCounts.js })}\n`));
const end = (): void => void server.close().then(() => process.exit(0));
process.stdin.on('end', end);
process.on('SIGTERM', end);
