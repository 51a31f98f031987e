/** Kea's perfdhcp output, read: DISCOVER/OFFER and REQUEST/ACK counts, and its 'non unique addresses' lines. */
export function perfStats(out: string): { doSent: number; doRecv: number; raSent: number; raRecv: number; nonUnique: number[] } {
  const sent = [...out.matchAll(/sent packets: (\d+)/g)].map((m) => Number(m[1]));
  const recv = [...out.matchAll(/received packets: (\d+)/g)].map((m) => Number(m[1]));
  const nonUnique = [...out.matchAll(/non unique addresses: (\d+)/g)].map((m) => Number(m[1]));
  return { doSent: sent[0] ?? 0, doRecv: recv[0] ?? 0, raSent: sent[1] ?? 0, raRecv: recv[1] ?? 0, nonUnique };
}
