/** The kickstart checker lives with `forge validate` (server/render/checks/kickstart.ts); tests import it from here. */
export { checkKickstart, ksVersionFor, splitWords, type KsProblem, type KsVersion } from '../../server/render/checks/kickstart.js';
