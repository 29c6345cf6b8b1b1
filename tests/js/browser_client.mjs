// stompjs in headless Chromium: serves page.html, scenario.mjs and stompjs's browser bundle from a
// static server on loopback, opens the page in Debian's chromium driven by playwright-core (which
// downloads no browser of its own), and prints the scenario's result as JSON.
// Usage: node browser_client.mjs '<scenario config as JSON>'  (CHROMIUM overrides /usr/bin/chromium)
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
// Only these files are served; nothing else under the test directory is reachable.
const FILES = {
  '/': ['page.html', 'text/html'],
  '/scenario.mjs': ['scenario.mjs', 'text/javascript'],
  '/stomp.umd.min.js': ['node_modules/@stomp/stompjs/bundles/stomp.umd.min.js', 'text/javascript'],
};
// Without the background-networking flags Chromium tries to reach the network, which is closed here.
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

function serve() {
  const server = createServer(async (request, response) => {
    const entry = FILES[new URL(request.url, 'http://x').pathname];
    if (!entry) {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(200, { 'content-type': entry[1] }).end(await readFile(join(here, entry[0])));
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

async function run(cfg) {
  const server = await serve();
  const profile = await mkdtemp(join(tmpdir(), 'batonmq-chromium-'));
  const problems = [];
  let context;
  try {
    // A persistent context is how playwright takes a fresh --user-data-dir of our choosing.
    context = await chromium.launchPersistentContext(profile, {
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true, args: FLAGS,
    });
    const page = context.pages()[0] || await context.newPage();
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    page.on('console', (message) => { if (message.type() === 'error') problems.push(message.text()); });
    const { port } = server.address();
    await page.goto(`http://127.0.0.1:${port}/?cfg=${encodeURIComponent(JSON.stringify(cfg))}`);
    await page.waitForFunction(() => window.testResult || window.testError, null,
      { timeout: cfg.timeoutMs + 2000 });
    const error = await page.evaluate(() => window.testError);
    if (error) throw new Error(`${error} ${problems.join('; ')}`);
    return { ...(await page.evaluate(() => window.testResult)), userAgent: await page.evaluate(() => navigator.userAgent) };
  } finally {
    if (context) await context.close();
    server.close();
    await rm(profile, { recursive: true, force: true });
  }
}

try {
  console.log(JSON.stringify(await run(JSON.parse(process.argv[2]))));
} catch (error) {
  console.error(`browser client failed: ${error.message}`);
  process.exitCode = 1;
}
