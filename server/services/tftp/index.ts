export { TftpServer, Transfer, type TftpServerOptions, type TftpStats, type TransferInfo, type Peer } from './server.js';
export { checkRequestPath, lookupInRoot } from './paths.js';
export { nativeTftpActive, tftpPathCounts, useNativeTftp } from './native.js';
