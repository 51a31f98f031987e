/**
 * The CLI command contract. Every `forge` command is a CommandSpec in one of
 * server/cli/commands/*.ts; server/cli/main.ts parses argv (node:util
 * parseArgs, strict), prints --help from the spec, runs it and maps a thrown
 * ForgeError to its exit code. Commands talk to the server only through
 * `io.client` (the shared API client), except `serve` which starts it.
 */
import type { ApiClient } from '../api/client.js';

export interface OptionSpec {
  type: 'string' | 'boolean';
  multiple?: boolean;
  short?: string;
  /** Shown in --help. */
  description: string;
  /** Metavariable for --help, e.g. MAC. */
  arg?: string;
  /**
   * Value taken when a string option is given bare (`--dhcp-force` means
   * `--dhcp-force true`): it is bare when it ends argv or the next word is
   * another option. Used by true|false options.
   */
  bare?: string;
}

export interface ParsedArgs {
  values: Record<string, string | boolean | string[] | boolean[] | undefined>;
  positionals: string[];
}

export interface CliIO {
  out(line: string): void;
  err(line: string): void;
  env: NodeJS.ProcessEnv;
  /**
   * The shared, typed API client (server/api/client.ts) for `server`, with the
   * token; throws ForgeError on any non-2xx answer (rebuilt from the JSON
   * error body) or when the server cannot be reached (SERVER_UNAVAILABLE).
   */
  readonly client: ApiClient;
  /** Base URL of the server in use. */
  server: string;
}

export interface CommandSpec {
  /** Words that select the command: ['system', 'add'], ['serve']. */
  path: string[];
  summary: string;
  /** Extra --help text after the generated option list (examples). */
  help?: string;
  options: Record<string, OptionSpec>;
  /** Allow positional arguments (default: none). */
  positionals?: boolean;
  /** Returns the exit code. Throw ForgeError for failures. */
  run(args: ParsedArgs, io: CliIO): Promise<number>;
}
