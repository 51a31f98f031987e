/** TFTP protocol library: codec and option negotiation (no product imports). */
export * from './packet.js';
export * from './options.js';
