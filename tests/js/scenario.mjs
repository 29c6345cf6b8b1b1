// One stompjs session against the broker, the same in node and in the browser: subscribe to `inbox`
// with client-individual acks and ack each of the `expect` messages (each ACK receipted), publish
// `send` messages to `outbox` (each SEND receipted), stay idle `idleMs` on heart-beats alone, then
// DISCONNECT. Resolves with what happened; rejects on an ERROR frame, a lost socket or `timeoutMs`.

export async function scenario(StompJs, cfg) {
  const result = { received: [], acked: 0, sent: 0, heartbeats: 0, subprotocol: null, version: null };
  const client = new StompJs.Client({
    brokerURL: cfg.url,
    heartbeatIncoming: cfg.heartbeatMs,
    heartbeatOutgoing: cfg.heartbeatMs,
    reconnectDelay: 0, // one session: a reconnect would hide a dropped connection
    onHeartbeatReceived: () => { result.heartbeats += 1; },
  });
  if (cfg.webSocketFactory) client.webSocketFactory = cfg.webSocketFactory;

  let fail;
  const failed = new Promise((_, reject) => { fail = reject; });
  failed.catch(() => {}); // seen through within(); never an unhandled rejection after the end
  client.onStompError = (frame) => fail(new Error(`ERROR frame: ${frame.headers.message}`));
  client.onWebSocketClose = (event) => {
    if (!result.done) fail(new Error(`socket closed early: ${event.code} ${event.reason}`));
  };
  const timer = setTimeout(() => fail(new Error(`timed out after ${cfg.timeoutMs} ms`)), cfg.timeoutMs);
  const within = (promise) => Promise.race([promise, failed]);
  const receipt = (id) => new Promise((resolve) => client.watchForReceipt(id, resolve));

  try {
    await within(new Promise((resolve) => { client.onConnect = resolve; client.activate(); }));
    result.version = client.connectedVersion;
    result.subprotocol = client.webSocket.protocol;

    const acks = [];
    await within(new Promise((resolve) => {
      client.subscribe(cfg.inbox, (message) => {
        result.received.push(message.body);
        const id = `ack-${result.received.length}`;
        acks.push(receipt(id).then(() => { result.acked += 1; }));
        message.ack({ receipt: id });
        if (result.received.length === cfg.expect) resolve();
      }, { ack: 'client-individual' });
    }));
    await within(Promise.all(acks));

    for (let i = 0; i < cfg.send; i += 1) {
      const done = receipt(`send-${i}`);
      client.publish({ destination: cfg.outbox, body: `${cfg.label} ${i}`, headers: { receipt: `send-${i}`, persistent: 'true' } });
      await within(done);
      result.sent += 1;
    }

    await within(new Promise((resolve) => setTimeout(resolve, cfg.idleMs)));
    result.connectedAfterIdle = client.connected;
    result.done = true;
    await client.deactivate();
    return result;
  } finally {
    clearTimeout(timer);
    result.done = true;
    if (client.active) await client.deactivate({ force: true });
  }
}
