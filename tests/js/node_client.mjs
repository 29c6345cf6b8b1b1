// stompjs from node: the `ws` package supplies the WebSocket that node 20 lacks, as stompjs documents.
// Usage: node node_client.mjs '<scenario config as JSON>'; prints the result as JSON.
import * as StompJs from '@stomp/stompjs';
import WebSocket from 'ws';

import { scenario } from './scenario.mjs';

const cfg = JSON.parse(process.argv[2]);
cfg.webSocketFactory = () => new WebSocket(cfg.url, StompJs.Versions.default.protocolVersions());
try {
  console.log(JSON.stringify(await scenario(StompJs, cfg)));
} catch (error) {
  console.error(`node client failed: ${error.message}`);
  process.exitCode = 1;
}
