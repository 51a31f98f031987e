/**
 * The template context: the blended variables (core/blend.ts, what
 * `forge system dumpvars` prints) plus the few values only the renderer
 * knows. Pure.
 *
 * Added (never overriding a blended value of the same name):
 *  - install_start_url, install_done_url, firstboot_url: forge's install
 *    callbacks for a system ('' when rendering a profile: no system to mark),
 *    under install_base_url (with the install token during the window);
 *  - serial_console: `ttyS0,115200` taken from kernel_options `console=ttyS..`
 *    when autoinstall_meta does not set it ('' when there is none);
 *  - installer_format: kickstart|preseed|autoyast|autoinstall|agama|generic
 *    (core/installer.ts, from breed and os_version);
 *  - ks_dns_search: whether this Anaconda's `network` takes --ipv4-dns-search;
 *  - network_config (computed when first read): the interfaces as a network config v2 object
 *    (core/netplan.ts) for cloud-init and subiquity templates, or
 *    agama_connections (the same as Agama network connections), or
 *    network_config_error naming the field it cannot express (templates that
 *    use it fail with that message; other formats never look);
 *  - instance_id: the NoCloud instance-id (the service sets one that changes
 *    with every completed install: forge-NAME-<id of the last install_done event>).
 */
import { installerFormat, kickstartFeatures } from '../core/installer.js';
import { NetplanError, agamaConnections, networkConfigV2 } from '../core/netplan.js';

export type Vars = Record<string, unknown>;

const str = (x: unknown): string => (typeof x === 'string' ? x : '');

/** `baseUrl`: install_base_url (BASE/i/TOKEN during the install window, core/access.ts). */
export function callbackUrls(baseUrl: string, system: string): { start: string; done: string; firstboot: string } {
  if (system === '') return { start: '', done: '', firstboot: '' };
  const base = `${baseUrl}/api/v1/systems/${encodeURIComponent(system)}`;
  return { start: `${base}/install/start`, done: `${base}/install/done`, firstboot: `${base}/firstboot` };
}

export function serialFromKernelOptions(ko: unknown): string {
  if (typeof ko !== 'object' || ko === null) return '';
  const c = (ko as Record<string, unknown>)['console'];
  return typeof c === 'string' && /^ttyS\d+/.test(c) ? c : '';
}

export function templateContext(vars: Vars): Vars {
  const ctx: Vars = { ...vars };
  const urls = callbackUrls(str(vars['install_base_url'] ?? vars['base_url']), str(vars['system_name']));
  if (ctx['install_start_url'] === undefined) ctx['install_start_url'] = urls.start;
  if (ctx['install_done_url'] === undefined) ctx['install_done_url'] = urls.done;
  if (ctx['firstboot_url'] === undefined) ctx['firstboot_url'] = urls.firstboot;
  if (ctx['serial_console'] === undefined) ctx['serial_console'] = serialFromKernelOptions(vars['kernel_options']);
  if (ctx['installer_format'] === undefined) ctx['installer_format'] = installerFormat(str(vars['breed']), str(vars['os_version']));
  if (ctx['network_config'] === undefined) {
    // Computed when a template first reads one of the three (most formats never do: a fifth of
    // validate's CPU per system went here), then kept. A write (a template's top-level set)
    // replaces the value where it is made, as on a plain property.
    let net: { network_config: unknown; agama_connections: unknown; network_config_error: string } | undefined;
    const compute = (): NonNullable<typeof net> => {
      if (net !== undefined) return net;
      try {
        net = { network_config: networkConfigV2(vars), agama_connections: agamaConnections(vars), network_config_error: '' };
      } catch (e) {
        if (!(e instanceof NetplanError)) throw e;
        net = { network_config: {}, agama_connections: [], network_config_error: e.message };
      }
      return net;
    };
    for (const key of ['network_config', 'agama_connections', 'network_config_error'] as const) {
      Object.defineProperty(ctx, key, {
        enumerable: true,
        configurable: true,
        get: () => compute()[key],
        set(this: Vars, v: unknown) {
          Object.defineProperty(this, key, { value: v, writable: true, enumerable: true, configurable: true });
        },
      });
    }
  }
  if (ctx['instance_id'] === undefined) ctx['instance_id'] = `forge-${str(vars['name'])}`;
  if (ctx['ks_dns_search'] === undefined) ctx['ks_dns_search'] = kickstartFeatures(str(vars['os_version'])).dnsSearch;
  return ctx;
}
