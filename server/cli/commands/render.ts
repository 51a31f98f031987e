import type { CommandSpec } from '../command.js';

/** `forge` commands of the render area. */
export const commands: CommandSpec[] = [];
