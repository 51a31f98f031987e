/**
 * The codec's one error type. The codec imports nothing of the product, so
 * instead of ForgeError it carries the catalogue code `DHCP_DECODE` as a plain
 * property; the DHCP service translates it to ForgeError('DHCP_DECODE') at its
 * edge (and in practice only counts and logs it: a bad packet is dropped).
 */
export class DecodeError extends Error {
  readonly code = 'DHCP_DECODE' as const;
  /** Byte offset in the packet where decoding failed, when known. */
  readonly offset: number | undefined;

  constructor(message: string, offset?: number) {
    super(offset === undefined ? message : `${message} (at byte ${offset})`);
    this.name = 'DecodeError';
    this.offset = offset;
  }
}

export function isDecodeError(e: unknown): e is DecodeError {
  return e instanceof DecodeError;
}
