import type { ServerContext } from '../context.js';
import type { Service } from './service.js';

/** Starts the DHCP service for ctx.config.dhcp_mode; undefined when mode is off. (Placeholder.) */
export async function startDhcp(_ctx: ServerContext): Promise<Service | undefined> {
  return undefined;
}
