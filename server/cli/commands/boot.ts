import type { CommandSpec } from '../command.js';

/** `forge` commands of the boot area. */
export const commands: CommandSpec[] = [];
