/**
 * Boot files: the port between the TFTP/HTTP servers and what they serve.
 * Generated per-machine configs (pxelinux.cfg/01-<mac>, GRUB, iPXE) are made
 * from the store at request time, so there is no sync step; loaders come from
 * Debian packages or config overrides. Owned by the boot-flow work.
 */
import type { ForgeConfig } from '../config.js';
import type { Logger } from '../log.js';
import { loaderPath } from './loaders.js';
import type { BootService, Rendered } from './provider.js';
import { asRequestFrom } from '../services/origin.js';
import { parseBootPath } from './target.js';

export type BootFile =
  | { kind: 'buffer'; data: Buffer; /** for event recording */ system?: string }
  | { kind: 'file'; path: string; size: number; system?: string };

export interface BootFileClient {
  /** Remote address as seen by the server. */
  address: string;
  /** `tftp` or `http`. */
  via: 'tftp' | 'http';
}

export interface BootFileProvider {
  /**
   * Resolve a request path (TFTP file name, relative, no leading slash) to a
   * file; undefined when it is not a boot file (the TFTP server then tries its
   * extra root). Must not throw for unknown paths.
   */
  resolve(path: string, client: BootFileClient): Promise<BootFile | undefined>;
}

/**
 * The provider TFTP uses (HTTP has its own routes over the same BootService).
 * Records loader_fetched / boot_config_served / kernel_fetched /
 * initrd_fetched for known systems: per-MAC file names name the machine;
 * for loaders and kernels the client address is looked up in the lease table.
 */
export function createBootFiles(boot: BootService, loaders: ForgeConfig['loaders'], logger: Logger): BootFileProvider {
  const log = logger.child('boot');

  const config = (rendered: Rendered, file: string, client: BootFileClient): BootFile => {
    const { decision } = rendered;
    const system = decision.matched === 'mac' ? decision.target.kind === 'menu' ? undefined : decision.target.system : undefined;
    boot.record(system, 'boot_config_served', client.via, { file, client: client.address, boot: decision.target.kind });
    // No `system` on the file: the event is recorded here, once, with its proper type.
    return { kind: 'buffer', data: Buffer.from(rendered.text, 'utf8') };
  };

  const direct: BootFileProvider = {
    async resolve(path, client) {
      const req = parseBootPath(path);
      if (req === undefined) return undefined;
      const file = path.replace(/^\/+/, '');
      try {
        switch (req.kind) {
          case 'loader': {
            const l = loaderPath(req.name, loaders);
            if (l === undefined) return undefined;
            const system = await boot.systemByAddress(client.address);
            boot.record(system, 'loader_fetched', client.via, { file: req.name, client: client.address });
            return { kind: 'file', path: l.path, size: l.size };
          }
          case 'pxelinux':
            return config(await boot.pxelinux(req.mac, client.address), file, client);
          case 'grub':
            return config(await boot.grub(req.mac, client.address), file, client);
          case 'grub-root':
            return { kind: 'buffer', data: Buffer.from(boot.grubRoot(), 'utf8') };
          case 'ipxe':
            return config(await boot.ipxe(req.mac, client.address), file, client);
          case 'distro': {
            const f = await boot.distroFile(req.distro, req.file);
            const system = await boot.systemByAddress(client.address);
            boot.record(system, req.file === 'kernel' ? 'kernel_fetched' : 'initrd_fetched', client.via, {
              file,
              distro: req.distro,
              size: f.size,
              client: client.address,
            });
            return { kind: 'file', path: f.path, size: f.size };
          }
          case 'discovery': {
            const f = await boot.discoveryFile(req.file);
            return { kind: 'file', path: f.path, size: f.size };
          }
        }
      } catch (e) {
        // A broken reference or a missing file is this request's failure, never the server's.
        log.warn('boot file not served', { file, client: client.address, error: e });
        return undefined;
      }
    },
  };
  // URLs in generated configs use our address facing this client (services/origin.ts).
  return { resolve: (path, client) => asRequestFrom(client.address, () => direct.resolve(path, client)) };
}
