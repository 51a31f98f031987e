/** Small dgram helpers shared by the service and the probe. */
import { createSocket, type Socket } from 'node:dgram';
import { literalLookup } from '../literal-lookup.js';

/**
 * reuseAddr: the probe shares the client port 68 with a local dhclient, and the service binds
 * its port twice (0.0.0.0 to receive broadcasts, each of our addresses to send limited
 * broadcasts out of the right interface).
 */
export function bindUdp(port: number, address: string, reuseAddr = false): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = createSocket({ type: 'udp4', reuseAddr, lookup: literalLookup });
    const onError = (e: Error): void => reject(e);
    s.once('error', onError);
    s.bind(port, address, () => {
      s.off('error', onError);
      s.setBroadcast(true);
      resolve(s);
    });
  });
}

export function sendUdp(s: Socket, data: Buffer, port: number, address: string): Promise<void> {
  return new Promise((resolve, reject) => s.send(data, port, address, (e) => (e ? reject(e) : resolve())));
}

/** Sends to `address`; for 255.255.255.255 without a route, to each directed broadcast instead. */
export async function sendWithFallback(s: Socket, data: Buffer, port: number, address: string, fallback: readonly string[] = []): Promise<void> {
  try {
    await sendUdp(s, data, port, address);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (address !== '255.255.255.255' || fallback.length === 0 || (code !== 'ENETUNREACH' && code !== 'EHOSTUNREACH')) throw e;
    for (const b of fallback) await sendUdp(s, data, port, b);
  }
}

export function closeUdp(s: Socket): Promise<void> {
  return new Promise((resolve) => {
    try {
      s.close(() => resolve());
    } catch {
      resolve();
    }
  });
}
