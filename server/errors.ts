/**
 * The one error catalogue of forge.
 *
 * Every failure that crosses a module boundary is a ForgeError with a stable
 * code from CATALOGUE. Edges translate it exactly once: the HTTP API turns it
 * into `{code, message, field?}` with `status`, the CLI into a message on
 * stderr and `exit` as its exit code. Modules add codes here (keep them
 * grouped by area and sorted within a group); test/unit/errors.test.ts pins
 * the table so a code never silently changes meaning.
 */

export interface ErrorSpec {
  /** HTTP status the API answers with. */
  readonly status: number;
  /** CLI exit code (documented in the README). */
  readonly exit: number;
  /** One-line meaning, for docs and `forge help errors`. */
  readonly summary: string;
}

/** CLI exit codes, documented in the README. */
export const EXIT = {
  ok: 0,
  /** Unexpected internal failure (a bug). */
  internal: 1,
  /** Bad command line: unknown verb or flag, missing required flag. */
  usage: 2,
  /** Input rejected by validation (bad MAC, IP, name, field value). */
  invalid: 3,
  /** The object named does not exist. */
  notFound: 4,
  /** Conflict: duplicate name/MAC/IP, still referenced, already exists. */
  conflict: 5,
  /** Missing or wrong token. */
  auth: 6,
  /** The server could not be reached or answered nonsense. */
  unavailable: 7,
  /** A template failed to render, or validation found errors. */
  render: 8,
  /** A VM / libvirt / disk operation failed (forge-agent). */
  virt: 9,
  /** Stopped by SIGINT (Ctrl-C): 128 + signal 2, the status a POSIX shell reports for a process killed by SIGINT (XCU 2.8.2). */
  interrupted: 130,
} as const;

export const CATALOGUE = {
  // --- generic
  INTERNAL: { status: 500, exit: EXIT.internal, summary: 'unexpected internal error' },
  USAGE: { status: 400, exit: EXIT.usage, summary: 'bad command line usage' },
  BAD_JSON: { status: 400, exit: EXIT.invalid, summary: 'request body is not valid JSON' },
  INVALID_FIELD: { status: 400, exit: EXIT.invalid, summary: 'a field has an invalid value' },
  UNKNOWN_FIELD: { status: 400, exit: EXIT.invalid, summary: 'a field name is not known for this object type' },
  MISSING_FIELD: { status: 400, exit: EXIT.invalid, summary: 'a required field is missing' },
  NOT_FOUND: { status: 404, exit: EXIT.notFound, summary: 'no such object' },
  ROUTE_NOT_FOUND: { status: 404, exit: EXIT.notFound, summary: 'no such endpoint' },
  BAD_PATH: { status: 400, exit: EXIT.invalid, summary: 'the request path is not valid percent-encoding' },
  PAYLOAD_TOO_LARGE: { status: 413, exit: EXIT.invalid, summary: 'request body too large' },
  // --- auth
  AUTH_REQUIRED: { status: 401, exit: EXIT.auth, summary: 'a bearer token is required for this endpoint' },
  AUTH_INVALID: { status: 403, exit: EXIT.auth, summary: 'the bearer token is wrong' },
  FORBIDDEN: { status: 403, exit: EXIT.auth, summary: 'the token\'s role does not allow this (a read token cannot write)' },
  // --- store / model
  DUPLICATE_NAME: { status: 409, exit: EXIT.conflict, summary: 'an object of this type already has this name' },
  DUPLICATE_MAC: { status: 409, exit: EXIT.conflict, summary: 'another interface already has this MAC address' },
  DUPLICATE_IP: { status: 409, exit: EXIT.conflict, summary: 'another interface already has this IP address' },
  REFERENCE_MISSING: { status: 400, exit: EXIT.invalid, summary: 'a referenced distro/profile does not exist' },
  REFERENCED: { status: 409, exit: EXIT.conflict, summary: 'the object is still referenced; use recursive' },
  PARENT_CYCLE: { status: 400, exit: EXIT.invalid, summary: 'profile parents form a cycle' },
  DISTRO_XOR_PARENT: { status: 400, exit: EXIT.invalid, summary: 'a profile needs exactly one of distro and parent' },
  SUBNET_OVERLAP: { status: 409, exit: EXIT.conflict, summary: 'the subnet overlaps another stored subnet' },
  OUTSIDE_SUBNETS: { status: 400, exit: EXIT.invalid, summary: 'a static interface address lies outside every stored subnet' },
  MAC_EXHAUSTED: { status: 409, exit: EXIT.conflict, summary: 'could not find a free random MAC address' },
  STORAGE_FULL: { status: 507, exit: EXIT.unavailable, summary: 'disk full: the data directory has no space left' },
  STORAGE_UNAVAILABLE: { status: 503, exit: EXIT.unavailable, summary: 'the data directory or database cannot be opened or written (read-only, permissions)' },
  DATA_DIR_LOCKED: { status: 409, exit: EXIT.conflict, summary: 'another forge serve uses this data directory' },
  STORE_CORRUPT: { status: 500, exit: EXIT.internal, summary: 'the database failed an integrity check' },
  // --- render
  TEMPLATE_NOT_FOUND: { status: 500, exit: EXIT.render, summary: 'an autoinstall template or snippet does not exist' },
  TEMPLATE_ERROR: { status: 500, exit: EXIT.render, summary: 'an autoinstall template failed to render' },
  TEMPLATE_PATH: { status: 400, exit: EXIT.invalid, summary: 'a template or include path escapes the template roots' },
  AUTOINSTALL_INVALID: { status: 422, exit: EXIT.render, summary: "a rendered file breaks its installer's rules (pykickstart, AutoYaST schema, cloud-init, subiquity, Agama)" },
  VALIDATION_FAILED: { status: 422, exit: EXIT.render, summary: 'one or more objects failed validation' },
  // --- boot / import
  IMPORT_UNRECOGNISED: { status: 400, exit: EXIT.invalid, summary: 'the path holds no install or netboot tree forge recognises' },
  PATH_OUTSIDE_ROOTS: { status: 400, exit: EXIT.invalid, summary: 'a file path lies outside the boot roots (or in a place never served)' },
  LOADER_MISSING: { status: 404, exit: EXIT.notFound, summary: 'a boot loader file is not installed' },
  RANGE_NOT_SATISFIABLE: { status: 416, exit: EXIT.invalid, summary: 'the requested byte range is outside the file' },
  // --- network services
  CONFIG_INVALID: { status: 400, exit: EXIT.usage, summary: 'the server configuration is invalid' },
  DHCP_CONFLICT: { status: 500, exit: EXIT.conflict, summary: 'another DHCP server answers on this segment' },
  DHCP_DECODE: { status: 400, exit: EXIT.invalid, summary: 'a DHCP packet could not be decoded' },
  TFTP_DECODE: { status: 400, exit: EXIT.invalid, summary: 'a TFTP packet could not be decoded' },
  TOO_MANY_STREAMS: { status: 503, exit: EXIT.unavailable, summary: 'too many event streams are open; retry later or send the token' },
  // --- client side
  SERVER_UNAVAILABLE: { status: 503, exit: EXIT.unavailable, summary: 'the forge server could not be reached' },
  // --- agent
  VIRT_UNAVAILABLE: { status: 500, exit: EXIT.virt, summary: 'libvirt or its Node binding is not available' },
  VIRT_EXISTS: { status: 409, exit: EXIT.conflict, summary: 'a domain or disk of that name exists; use --force' },
  VIRT_FAILED: { status: 500, exit: EXIT.virt, summary: 'a libvirt operation failed' },
  INSTALL_FAILED: { status: 500, exit: EXIT.virt, summary: 'the installer crashed or timed out' },
  NEEDS_FORCE: { status: 409, exit: EXIT.conflict, summary: 'the command would lose data (a disk, a snapshot, unsynced guest state); use --force' },
  VM_RUNNING: { status: 409, exit: EXIT.conflict, summary: 'the VM is running; stop it first' },
  VIRT_IN_USE: { status: 409, exit: EXIT.conflict, summary: "a disk file is in another domain's disk or backing chain; forge-agent leaves it alone" },
  SNAPSHOT_INCOMPLETE: { status: 409, exit: EXIT.conflict, summary: 'a snapshot delete stopped half way (its image is already merged); run snapshot delete again to finish it' },
  NOT_FORGE_DOMAIN: { status: 404, exit: EXIT.notFound, summary: 'no forge-made domain of that name (forge-agent vm manages only its own)' },
  BUILD_FAILED: { status: 500, exit: EXIT.virt, summary: 'forge-agent --build failed (a step, a hook, the bootstrap or GRUB); what it made was released' },
  BUILD_INTERRUPTED: { status: 500, exit: EXIT.interrupted, summary: 'forge-agent --build was interrupted (SIGINT); what it made was released' },
  JOB_FAILED: { status: 500, exit: EXIT.virt, summary: 'a rescue-VM job failed or timed out' },
  DOWNLOAD_FAILED: { status: 502, exit: EXIT.unavailable, summary: 'a kernel/initrd download failed or did not match its checksum' },
  // --- power
  POWER_FAILED: { status: 502, exit: EXIT.virt, summary: 'the power driver (libvirt, IPMI BMC, Redfish service) refused or did not answer' },
  POWER_NOT_CONFIGURED: { status: 409, exit: EXIT.conflict, summary: 'the system has power_type none' },
  // --- discovery
  KNOWN_SYSTEM: { status: 409, exit: EXIT.conflict, summary: 'a discovery report named a MAC that a system has; discovery never changes known systems' },
  RATE_LIMITED: { status: 429, exit: EXIT.unavailable, summary: 'too many discovery reports from this address (or in all); retry later' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof CATALOGUE;

/** The JSON body every API error has. */
export interface ErrorBody {
  code: ErrorCode;
  message: string;
  field?: string;
  /** Extra structured detail (e.g. the list of validation errors). */
  details?: unknown;
}

export class ForgeError extends Error {
  readonly code: ErrorCode;
  readonly field: string | undefined;
  readonly details: unknown;

  constructor(code: ErrorCode, message: string, opts: { field?: string; details?: unknown; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'ForgeError';
    this.code = code;
    this.field = opts.field;
    this.details = opts.details;
  }

  get status(): number {
    return CATALOGUE[this.code].status;
  }

  get exit(): number {
    return CATALOGUE[this.code].exit;
  }

  toBody(): ErrorBody {
    const body: ErrorBody = { code: this.code, message: this.message };
    if (this.field !== undefined) body.field = this.field;
    if (this.details !== undefined) body.details = this.details;
    return body;
  }
}

export function isErrorCode(x: unknown): x is ErrorCode {
  return typeof x === 'string' && Object.prototype.hasOwnProperty.call(CATALOGUE, x);
}

/** Rebuild a ForgeError from an API error body (used by the typed client). */
/**
 * Response header of a long answer (services/http/limits.ts longJson): its status is sent
 * before the work ends, so a failure is the body {"streamed_error": ERROR_BODY}.
 */
export const LONG_ANSWER_HEADER = 'Forge-Streamed';

export function fromBody(body: unknown, fallbackStatus: number): ForgeError {
  if (typeof body === 'object' && body !== null) {
    const b = body as Record<string, unknown>;
    if (isErrorCode(b['code']) && typeof b['message'] === 'string') {
      const opts: { field?: string; details?: unknown } = {};
      if (typeof b['field'] === 'string') opts.field = b['field'];
      if (b['details'] !== undefined) opts.details = b['details'];
      return new ForgeError(b['code'], b['message'], opts);
    }
  }
  return new ForgeError('SERVER_UNAVAILABLE', `server answered HTTP ${fallbackStatus} without a forge error body`);
}

/** Shorthand for field validation failures. */
export function invalid(field: string, rule: string): ForgeError {
  return new ForgeError('INVALID_FIELD', `${field}: ${rule}`, { field });
}
