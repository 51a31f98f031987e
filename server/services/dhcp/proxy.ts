/**
 * proxyDHCP (PXE 2.1 s2.2.3): beside the site's DHCP server, forge answers PXE clients only
 * (option 60 PXEClient/HTTPClient), never assigns an address, and answers boot-server requests
 * on port 4011.
 */
import { MessageType, Opt, macOf, replyTo, type Packet } from '../../protocol/dhcp4/index.js';
import { isPxeVendorClass } from '../../core/bootplan.js';
import type { Arrival, DhcpHandler, Inbound } from './handler.js';
import { ZERO } from './handler.js';
import { addressReply, type Outbound } from './reply.js';

export class ProxyDhcp {
  constructor(private readonly h: DhcpHandler) {}

  async handle(p: Packet, mt: number, msg: Inbound, arrival: Arrival): Promise<Outbound | undefined> {
    const s = this.h.settings;
    if (!isPxeVendorClass(p.options.vendorClass())) return this.h.ignore();
    const onBootPort = msg.localPort === s.proxyPort && s.proxyPort !== s.port;
    if (!onBootPort && mt !== MessageType.DISCOVER) return this.h.ignore();
    if (onBootPort && mt !== MessageType.REQUEST && mt !== MessageType.INFORM && mt !== MessageType.DISCOVER) return this.h.ignore();
    const { resolved, bootSystem } = await this.h.resolve(macOf(p), arrival);
    const plan = this.h.plan(p, bootSystem, arrival);
    if (plan.kind === 'ignore' || plan.kind === 'local') return this.h.ignore();
    const r = replyTo(p);
    r.options.setUint8(Opt.MessageType, onBootPort ? MessageType.ACK : MessageType.OFFER);
    r.options.setIp(Opt.ServerIdentifier, arrival.address);
    if (onBootPort) r.ciaddr = p.ciaddr;
    r.options.setString(Opt.VendorClass, plan.kind === 'http' ? 'HTTPClient' : 'PXEClient');
    // PXE 2.1 s2.2.3 option 43 sub-option 6 (discovery control) = 8: skip boot server
    // discovery and boot the file in this packet (as pixiecore does).
    if (plan.kind !== 'http') r.options.set(Opt.VendorSpecific, Buffer.of(6, 1, 8, 255));
    const uuid = p.options.get(Opt.ClientUuid);
    if (uuid !== undefined) r.options.set(Opt.ClientUuid, uuid);
    r.sname = arrival.nextServer;
    const boot = this.h.applyPlan(p, r, plan, arrival);
    if (plan.kind === 'ipxe' || plan.kind === 'http') r.siaddr = arrival.nextServer;
    const out =
      addressReply(p, r, {
        serverPort: s.port,
        clientPort: s.clientPort,
        broadcasts: s.localBroadcasts,
        ...(onBootPort ? { toSender: { address: msg.address, port: msg.port } } : {}),
        ...(p.giaddr === ZERO && arrival.address !== s.serverId ? { via: arrival.address } : {}),
      }) ?? this.h.tooBig(p);
    if (out === undefined) return undefined;
    if (onBootPort) this.h.stats.acks++;
    else this.h.stats.offers++;
    this.h.record(onBootPort ? 'dhcp_ack' : 'dhcp_offer', p, resolved, '', boot, plan);
    return out;
  }
}
