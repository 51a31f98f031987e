/** IPv4 addresses as unsigned 32-bit integers: the one set of helpers (validation, DHCP pools, template filters). Pure. */

/** Strict dotted quad: four decimal octets <= 255, no leading zeros (`10.0.0.09` is not an address). */
export function isIPv4(s: string): boolean {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (m === null) return false;
  return m.slice(1).every((p) => Number(p) <= 255 && (p === '0' || !p.startsWith('0')));
}

/** Dotted quad (surrounding blanks ignored) to its integer; undefined when not four octets <= 255. */
export function ipToInt(ip: string): number | undefined {
  // By hand (it runs several times per DHCP packet, issue 21 profile); blanks around the quad
  // are the one thing the loop refuses that an address may carry, so only then is it trimmed.
  return parseQuad(ip) ?? parseQuad(ip.trim());
}

/**
 * Exactly four dot-separated runs of 1-3 decimal digits, each <= 255, nothing else (no blanks):
 * its integer, else undefined. No regular expression and no allocation. The DHCP codec has its
 * own loop of this shape (protocol/dhcp4/options.ts writeIpInto): protocol/ imports nothing of
 * forge, core/ nothing outside core/ (test/unit/boundaries.test.ts).
 */
export function parseQuad(ip: string): number | undefined {
  let n = 0;
  let val = 0;
  let digits = 0;
  let parts = 0;
  for (let i = 0; i <= ip.length; i++) {
    const c = i < ip.length ? ip.charCodeAt(i) : 46;
    if (c === 46) {
      if (digits === 0 || val > 255 || ++parts > 4) return undefined;
      n = n * 256 + val;
      val = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57 && digits < 3) {
      val = val * 10 + (c - 48);
      digits++;
    } else return undefined;
  }
  return parts === 4 ? n : undefined;
}

export function intToIp(n: number): string {
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** The netmask of a prefix length (0-32) as an integer. */
export function maskOf(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}
