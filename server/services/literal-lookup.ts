/**
 * A dgram `lookup` for sockets that only ever send to IP literals (DHCP and TFTP peers come
 * from rinfo, giaddr, ciaddr or a broadcast address). dgram's default resolves every send's
 * address through dns.lookup, which for a literal costs a process.nextTick, a closure and an
 * async-hooks scope per datagram (a measurable share of a DHCP or TFTP server's CPU, issue 21).
 * A name (never expected here) still goes through dns.lookup.
 */
import { lookup as dnsLookup } from 'node:dns';
import { isIP } from 'node:net';
import type { SocketOptions } from 'node:dgram';

type LookupCb = (err: NodeJS.ErrnoException | null, address: string, family: number) => void;

function literal(address: string, family: unknown, cb: LookupCb): void {
  const f = isIP(address);
  if (f !== 0) {
    cb(null, address, f);
    return;
  }
  dnsLookup(address, { family: family === 6 || family === 'IPv6' ? 6 : 4 }, (err, a, fam) => cb(err, a, fam));
}

export const literalLookup = literal as unknown as NonNullable<SocketOptions['lookup']>;

/**
 * For a socket that sends to one peer (a TFTP transfer, RFC 1350 section 4): that literal is
 * answered without parsing it again per datagram; any other address goes through `literal`.
 */
export function peerLookup(peer: string): NonNullable<SocketOptions['lookup']> {
  const family = isIP(peer);
  const fn = (address: string, opts: unknown, cb: LookupCb): void => {
    if (address === peer && family !== 0) cb(null, address, family);
    else literal(address, opts, cb);
  };
  return fn as unknown as NonNullable<SocketOptions['lookup']>;
}
