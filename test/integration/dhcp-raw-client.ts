/**
 * A raw DHCP sender for the real-socket tests, run inside a namespace:
 * `node dhcp-raw-client.js '<json>'` with {bind, bindPort, to, port, listenMs, packets: [hex]}
 * (or `@FILE` holding that JSON, for more packets than one argument may carry).
 * It sends each packet (built by the test with the codec, so a relay's giaddr, a DECLINE or an
 * INIT-REBOOT REQUEST can be any shape) and prints every BOOTREPLY it receives as one hex line
 * until listenMs has passed. Not a test file itself.
 */
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';

interface Job {
  bind: string;
  bindPort: number;
  to: string;
  port: number;
  listenMs: number;
  packets: string[];
  /** Pause between packets (ms). */
  gapMs?: number;
}

async function main(): Promise<void> {
  const arg = process.argv[2] ?? '{}';
  const j = JSON.parse(arg.startsWith('@') ? readFileSync(arg.slice(1), 'utf8') : arg) as Job;
  const sock = createSocket({ type: 'udp4', reuseAddr: true });
  await new Promise<void>((resolve) => sock.bind(j.bindPort, j.bind, () => resolve()));
  sock.setBroadcast(true);
  sock.on('message', (data) => {
    if (data[0] === 2) process.stdout.write(`${data.toString('hex')}\n`);
  });
  for (const hex of j.packets) {
    await new Promise<void>((resolve, reject) => sock.send(Buffer.from(hex, 'hex'), j.port, j.to, (e) => (e ? reject(e) : resolve())));
    await new Promise((r) => setTimeout(r, j.gapMs ?? 300));
  }
  await new Promise((r) => setTimeout(r, j.listenMs));
  sock.close();
}

void main().catch((e: unknown) => {
  process.stderr.write(`${String(e)}\n`);
  process.exit(1);
});
