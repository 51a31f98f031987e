/**
 * Managed DHCP's hot path compiled before the first client: `forge serve` runs synthetic DORA
 * exchanges through a throwaway handler before its sockets open.
 *
 * Why: V8 runs new code in its interpreter and optimises a function only after it has run
 * often. A freshly started forge spent about 250 us of CPU per datagram on its first thousand
 * (against about 80 us warm, issue 21 profile), so a boot storm right after a start (1,000 PXE
 * clients at 2,000/s in the bench) needed a whole core; on a loaded machine the process got a
 * fraction of one, fell behind, and the socket's receive buffer overflowed (UDP RcvbufErrors):
 * the bench's forge answered 51 and 721 of 1,000 where a warm one answered all of them.
 *
 * The exchanges change nothing anyone sees: their own lease table without a store (nothing
 * persisted), no address claimed in a shared store (DhcpHandler.claims; the store's lookups by MAC
 * and IP are reads and part of the path), no events recorded, nothing logged, no socket. Proxy mode answers with
 * much less code and is not warmed.
 */
import { MessageType, Opt, Options, encode, macToChaddr, BOOTREQUEST, type Packet, decode } from '../../protocol/dhcp4/index.js';
import { createLogger } from '../../log.js';
import type { DhcpHandler, Inbound } from './handler.js';
import { LeaseTable } from './leases.js';
import { intToIp } from './net.js';

/**
 * Exchanges run at start. Measured in-process (real handler and SQLite store, load 11): CPU per
 * exchange 610 us over the first 200, about 150 us after 1,200, 50-60 us (steady) after about
 * 3,400, as V8 optimises the handler's functions.
 */
export const WARMUP_EXCHANGES = 3000;
/** The warm-up stops earlier when it has taken this long (a loaded machine, a store answering over the network). */
export const WARMUP_BUDGET_MS = 1500;

function request(mac: string, xid: number, type: number, giaddr: string, pxe: boolean, extra: (o: Options) => void): Buffer {
  const options = new Options().setUint8(Opt.MessageType, type);
  options.set(Opt.ParameterRequestList, Buffer.of(1, 3, 6, 12, 15, 28, 42, 43, 60, 66, 67));
  if (pxe) {
    options.setString(Opt.VendorClass, 'PXEClient:Arch:00000:UNDI:002001');
    options.setUint16(Opt.ClientArch, xid % 2);
  }
  extra(options);
  const p: Packet = {
    op: BOOTREQUEST, htype: 1, hlen: 6, hops: giaddr === '0.0.0.0' ? 0 : 1, xid, secs: 0, flags: 0,
    ciaddr: '0.0.0.0', yiaddr: '0.0.0.0', siaddr: '0.0.0.0', giaddr, chaddr: macToChaddr(mac), sname: '', file: '', options,
  };
  return encode(p);
}

/**
 * Runs `n` DISCOVER + REQUEST exchanges (fewer when `budgetMs` runs out) through `make`'s handler,
 * built over a lease table of its own, with shared-store claims withheld; resolves with the number ACKed
 * (0 when there is no pool to serve).
 */
export async function warmUp(make: (leases: LeaseTable) => Promise<DhcpHandler>, n = WARMUP_EXCHANGES, budgetMs = WARMUP_BUDGET_MS): Promise<number> {
  const until = performance.now() + budgetMs;
  const quiet = createLogger('error', 'warmup', () => undefined);
  const h = await make(new LeaseTable(undefined, quiet));
  // The same store object as the service's (the same shapes for V8 to optimise), its claims withheld.
  h.claims = false;
  const pool = h.settings.pools.find((p) => p.subnet.answered);
  if (h.settings.mode !== 'managed' || pool === undefined) return 0;
  // Relayed from an address of the pool's subnet (the relay's giaddr), and direct when it is attached.
  const relayed = intToIp(pool.subnet.network + 1);
  const direct = h.settings.localSubnet?.cidr === pool.subnet.cidr;
  const from = (giaddr: string): Omit<Inbound, 'data'> => (giaddr === '0.0.0.0' ? { address: '0.0.0.0', port: 68, localPort: h.settings.port } : { address: giaddr, port: h.settings.port, localPort: h.settings.port });
  const distinct = Math.max(1, Math.min(pool.last - pool.first + 1, 4096));
  let acked = 0;
  for (let i = 0; i < n && (i % 64 !== 0 || performance.now() < until); i++) {
    // Locally administered MACs (02:...); the handler's lookups of them are reads only.
    const k = i % distinct;
    const mac = `02:00:5e:f0:${((k >> 8) & 0xff).toString(16).padStart(2, '0')}:${(k & 0xff).toString(16).padStart(2, '0')}`;
    const giaddr = direct && i % 4 === 3 ? '0.0.0.0' : relayed;
    const pxe = i % 2 === 1;
    const offer = await h.handle({ ...from(giaddr), data: request(mac, 0x5eed0000 + i, MessageType.DISCOVER, giaddr, pxe, () => undefined) });
    if (offer === undefined) continue;
    const o = decode(offer.data);
    const sid = o.options.ip(Opt.ServerIdentifier);
    const ack = await h.handle({
      ...from(giaddr),
      data: request(mac, 0x5eed0000 + i, MessageType.REQUEST, giaddr, pxe, (x) => {
        x.setIp(Opt.RequestedIP, o.yiaddr);
        if (sid !== undefined) x.setIp(Opt.ServerIdentifier, sid);
      }),
    });
    if (ack !== undefined) acked++;
  }
  return acked;
}
