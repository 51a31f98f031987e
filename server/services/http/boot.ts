import { Router } from 'express';
import type { ServerContext } from '../../context.js';

/** HTTP boot routes (/boot/..., /tree/...): loaders, per-MAC configs, kernels, initrds. (Placeholder.) */
export function bootRouter(_ctx: ServerContext): Router {
  return Router();
}
