/**
 * The /api/v1 answers as TypeScript types, one place for the server's
 * handlers, the shared client (api/client.ts: CLI and forge-agent) and the
 * web UI (type-only imports, erased at build). Shapes that belong to a module
 * are declared there and re-exported here; the rest are declared here. The
 * OpenAPI components (api/openapi.ts) describe the same shapes.
 */
export type { Distro, Profile, System, KindMap, ObjectKind, ForgeEvent, EventType, Lease } from '../core/model.js';
export type { Problem } from './data.js';
export type { PowerAction, PowerResult } from '../power/service.js';
export type { ValidateReport, ExplainReport } from '../render/service.js';
export type { FileUse, TemplateEntry } from '../render/renderer.js';
export type { Discovered, Rule } from '../discovery/model.js';
export type { RuleVerdict } from '../discovery/service.js';
export type { LoaderStatus } from '../boot/loaders.js';
export type { StageInfo } from '../events/lifecycle.js';
export type { DhcpLinkStatus } from '../services/dhcp/links.js';
export type { RaLinkStatus, RaStatus } from '../services/ra.js';
export type { ApiTokenInfo, AuditEntry } from '../core/access.js';
export type { ExportDocument, ImportCounts } from '../store/store.js';
import type { StageInfo } from '../events/lifecycle.js';
import type { DhcpLinkStatus } from '../services/dhcp/links.js';
import type { RaStatus } from '../services/ra.js';
import type { EventType } from '../core/model.js';
import type { ApiTokenInfo } from '../core/access.js';
import type { ImportCounts } from '../store/store.js';
import type { FileUse, TemplateEntry } from '../render/renderer.js';
import type { RenderRoots } from '../render/roots.js';
import type { Facts } from '../rules/expr.js';
import type { RuleVerdict } from '../discovery/service.js';

/** GET /api/v1/health */
export interface Health {
  ok: boolean;
  name: string;
  version: string;
  base_url: string;
}

/** GET /api/v1/whoami */
export interface Whoami {
  role: 'anonymous' | 'admin';
  can_write: boolean;
}

/** DELETE answers. */
export interface Removed {
  removed: string[];
}

/** POST .../bulk */
export interface Created {
  created: number;
}

/** Install callbacks (GET|POST /api/v1/systems/NAME/install/done ...). */
export interface CallbackResult {
  system: string;
  event: EventType;
  netboot_enabled?: boolean;
}

/** One file of GET /api/v1/distros/NAME/files. */
export interface RemoteFile {
  url: string;
  size: number;
  sha256: string;
}

/** GET /api/v1/distros/NAME/files */
export interface DistroFiles {
  kernel: RemoteFile;
  initrd: RemoteFile;
}

/** GET /api/v1/boot/info */
export interface BootInfo {
  base_url: string;
  bios_loader: string;
  uefi_loader: string;
  unknown_boot: string;
  stall_minutes: number;
  pxe_just_once: boolean;
}

/** One system of GET /api/v1/status. */
export interface StatusRow extends StageInfo {
  name: string;
  profile: string;
  netboot_enabled: boolean;
}

/** GET /api/v1/status */
export interface StatusAnswer {
  time?: string;
  systems: StatusRow[];
  stall_minutes: number;
  /** The answering server's server_name (several servers on one database). */
  server_name?: string;
  dhcp_links?: DhcpLinkStatus[];
  /** IPv6 router advertisements on the served links (managed DHCP's radvd). */
  ipv6_ra?: RaStatus;
}

/** POST /api/v1/systems/NAME/events */
export interface NewEvent {
  type: EventType;
  source?: string;
  detail?: Record<string, unknown>;
}

/** POST /api/v1/import */
export interface ImportAnswer {
  imported: ImportCounts;
}

/** POST /api/v1/tokens: the token itself is in this answer only. */
export type NewToken = ApiTokenInfo & { token: string };

/** GET /api/v1/templates */
export interface TemplateLists {
  roots: RenderRoots;
  templates: TemplateEntry[];
  snippets: TemplateEntry[];
}

/** GET /api/v1/templates/file */
export type TemplateFile = FileUse & { content: string };

/** POST /api/v1/discovered/NAME/provision */
export interface Provisioned {
  discovered: string;
  system: string;
}

/** GET /api/v1/rules/test?discovered=NAME */
export interface RuleTest {
  discovered: string;
  facts: Facts;
  rules: RuleVerdict[];
  /** The rule that would fire, or null. */
  fires: string | null;
  hostname: string | null;
}
