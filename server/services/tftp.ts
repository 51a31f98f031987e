import type { BootFileProvider } from '../boot/files.js';
import type { ServerContext } from '../context.js';
import type { Service } from './service.js';

/** Starts the TFTP service unless disabled; undefined when tftp_enabled is false. (Placeholder.) */
export async function startTftp(_ctx: ServerContext, _files: BootFileProvider): Promise<Service | undefined> {
  return undefined;
}
