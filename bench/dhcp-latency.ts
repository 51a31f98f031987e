/**
 * The DHCP bench's latency probe, run inside a relay namespace of its own:
 * `node dhcp-latency.js '<json>'` with {bind, server, ms, gapMs, seed}. It acts as a relay
 * (giaddr = bind, from port 67, RFC 2131 s4.1) for one new client at a time: DISCOVER, wait
 * for the OFFER, REQUEST (SELECTING, server identifier and requested address from the offer,
 * RFC 2131 s4.3.2), and times REQUEST sent -> ACK received with hrtime. perfdhcp prints only
 * the average and the maximum delay; this gives the percentiles, beside perfdhcp's load or
 * alone (idle). An exchange unanswered within 1 s counts as lost, not as a latency. One
 * exchange at a time every gapMs, so the probe adds the same few exchanges per second to
 * every server. Prints one JSON line {requestAckUs: number[], lost}. Not a test file.
 */
import { createSocket } from 'node:dgram';
import { MessageType, Opt, Options, decode, encode } from '../server/protocol/dhcp4/index.js';
import { bootRequest } from '../test/lib/dhcp-request.js';

interface Job {
  bind: string;
  server: string;
  /** How long to probe (ms). */
  ms: number;
  /** Pause between exchanges (ms). */
  gapMs: number;
  /** Distinguishes the MACs of successive probes against one server (each a new client). */
  seed: number;
}

const TIMEOUT_MS = 1000;

async function main(): Promise<void> {
  const j = JSON.parse(process.argv[2] ?? '{}') as Job;
  const sock = createSocket({ type: 'udp4', reuseAddr: true });
  await new Promise<void>((resolve) => sock.bind(67, j.bind, () => resolve()));
  let waiting: { xid: number; type: number; done: (p: ReturnType<typeof decode> | undefined) => void } | undefined;
  sock.on('message', (data) => {
    if (waiting === undefined || data[0] !== 2) return;
    try {
      const p = decode(data);
      if (p.xid === waiting.xid && p.options.messageType() === waiting.type) waiting.done(p);
    } catch {
      /* not a reply of ours */
    }
  });
  const ask = (pkt: Buffer, xid: number, type: number): Promise<ReturnType<typeof decode> | undefined> =>
    new Promise((resolve) => {
      const t = setTimeout(() => {
        waiting = undefined;
        resolve(undefined);
      }, TIMEOUT_MS);
      waiting = {
        xid,
        type,
        done: (p) => {
          clearTimeout(t);
          waiting = undefined;
          resolve(p);
        },
      };
      sock.send(pkt, 67, j.server);
    });
  const us: number[] = [];
  let lost = 0;
  const end = Date.now() + j.ms;
  for (let i = 0; Date.now() < end; i++) {
    // Locally administered MACs (02:...), never perfdhcp's.
    const mac = `02:1a:${(j.seed & 0xff).toString(16).padStart(2, '0')}:${((i >> 16) & 0xff).toString(16).padStart(2, '0')}:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`;
    const xid = ((j.seed & 0xff) << 24) | (i & 0xffffff);
    const discover = encode(bootRequest({ mac, xid, giaddr: j.bind, options: new Options().setUint8(Opt.MessageType, MessageType.DISCOVER) }));
    const offer = await ask(discover, xid, MessageType.OFFER);
    if (offer === undefined) {
      lost++;
      continue;
    }
    const opts = new Options().setUint8(Opt.MessageType, MessageType.REQUEST).setIp(Opt.RequestedIP, offer.yiaddr);
    const sid = offer.options.ip(Opt.ServerIdentifier);
    if (sid !== undefined) opts.setIp(Opt.ServerIdentifier, sid);
    const request = encode(bootRequest({ mac, xid, giaddr: j.bind, options: opts }));
    const t0 = process.hrtime.bigint();
    const ack = await ask(request, xid, MessageType.ACK);
    if (ack === undefined) lost++;
    else us.push(Number(process.hrtime.bigint() - t0) / 1000);
    await new Promise((r) => setTimeout(r, j.gapMs));
  }
  sock.close();
  process.stdout.write(`${JSON.stringify({ requestAckUs: us, lost })}\n`);
}

void main().catch((e: unknown) => {
  process.stderr.write(`${String(e)}\n`);
  process.exit(1);
});
