import { Router } from 'express';
import type { ServerContext } from '../context.js';

/** Autoinstall routes (/autoinstall/..., /cblr/svc/op/...) and install callbacks. (Placeholder.) */
export function autoinstallRouter(_ctx: ServerContext): Router {
  return Router();
}
