#!/usr/bin/env node
// Extracts the first client DHCPDISCOVER and DHCPREQUEST (UDP src port 68 -> 67) from a
// classic pcap file (tcpdump -w, Ethernet link type) and writes their UDP payloads as hex,
// 32 bytes per line: <prefix>-discover.hex, <prefix>-request.hex. Used by record.sh.
import { readFileSync, writeFileSync } from 'node:fs';

const [file, prefix] = process.argv.slice(2);
if (!file || !prefix) { console.error('usage: pcap2hex.mjs FILE.pcap OUT-PREFIX'); process.exit(2); }
const buf = readFileSync(file);
const magic = buf.readUInt32LE(0);
const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
const u32 = (o) => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
if (u32(20) !== 1) { console.error('not an Ethernet pcap'); process.exit(1); }
const found = {};
for (let off = 24; off + 16 <= buf.length; ) {
  const incl = u32(off + 8);
  const frame = buf.subarray(off + 16, off + 16 + incl);
  off += 16 + incl;
  let p = 12;
  let type = frame.readUInt16BE(p);
  if (type === 0x8100) { p += 4; type = frame.readUInt16BE(p); }
  if (type !== 0x0800) continue;
  const ip = p + 2;
  const ihl = (frame[ip] & 0x0f) * 4;
  if (frame[ip + 9] !== 17) continue;
  const udp = ip + ihl;
  const sport = frame.readUInt16BE(udp), dport = frame.readUInt16BE(udp + 2);
  const ulen = frame.readUInt16BE(udp + 4);
  if (sport !== 68 || dport !== 67) continue;
  const payload = frame.subarray(udp + 8, udp + ulen);
  // Option 53 message type: scan options after the magic cookie at 236.
  let i = 240, mtype = 0;
  while (i < payload.length) {
    const code = payload[i];
    if (code === 0) { i++; continue; }
    if (code === 255) break;
    const len = payload[i + 1];
    if (code === 53) mtype = payload[i + 2];
    i += 2 + len;
  }
  const name = mtype === 1 ? 'discover' : mtype === 3 ? 'request' : undefined;
  if (name && !found[name]) found[name] = payload;
}
for (const [name, payload] of Object.entries(found)) {
  const hex = payload.toString('hex').match(/.{1,64}/g).join('\n') + '\n';
  writeFileSync(`${prefix}-${name}.hex`, hex);
  console.log(`wrote ${prefix}-${name}.hex (${payload.length} bytes)`);
}
if (!found.discover || !found.request) { console.error(`missing: ${['discover', 'request'].filter((n) => !found[n]).join(', ')}`); process.exit(1); }
